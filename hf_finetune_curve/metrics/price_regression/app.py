"""The metric's Space: a form that scores a pasted table with the metric.

``evaluate.utils.launch_gradio_widget`` builds its form with ``gr.inputs`` / ``gr.outputs``, which Gradio 4
removed; this is the same widget on the current Gradio API (5 and later). ``python app.py`` serves it (as
a Space does); importing this file only builds ``demo``.
"""

import json
import os
from pathlib import Path

import evaluate
import gradio as gr

HERE = Path(__file__).resolve().parent


def _input_types(features) -> list[str]:
    """"number" for int/float features, "str" for strings, "json" for anything else (a list: an embedding)."""
    from datasets import Value

    types = []
    for feature in features.values():
        if isinstance(feature, Value) and feature.dtype.startswith(("int", "float")):
            types.append("number")
        elif isinstance(feature, Value) and feature.dtype == "string":
            types.append("str")
        else:
            types.append("json")
    return types


def _card_text(path: Path) -> str:
    """The README without its YAML header."""
    if not path.is_file():
        return ""
    text = path.read_text(encoding="utf-8")
    if text.startswith("---"):
        parts = text.split("---", 2)
        text = parts[2] if len(parts) == 3 else text
    return text.strip()


def launch_gradio_widget(metric, *, launch: bool = True, **launch_kwargs) -> gr.Interface:
    """``evaluate``'s metric widget on Gradio 5+: one table column per input, the result as JSON.

    Builds the interface, serves it when ``launch`` (``launch_kwargs`` go to ``Interface.launch``), and
    returns it.
    """
    features = metric.features[0] if isinstance(metric.features, list) else metric.features
    names = list(features)
    types = _input_types(features)

    def compute(table):
        inputs = {name: [] for name in names}
        for row in table.itertuples(index=False):
            cells = [str(cell).strip() if cell is not None else "" for cell in row]
            if any(cell in ("", "nan") for cell in cells):
                continue  # the empty row a table starts with, or a half-filled one
            for name, kind, cell in zip(names, types, cells):
                if kind == "json":
                    inputs[name].append(json.loads(cell))
                elif kind == "number":
                    inputs[name].append(float(cell))
                else:
                    inputs[name].append(cell.strip('"'))
        return metric.compute(**inputs)

    demo = gr.Interface(
        fn=compute,
        inputs=gr.Dataframe(headers=names, datatype=["number" if kind == "number" else "str" for kind in types],
                            label="one row per example" + (" (embeddings as JSON lists)" if "json" in types else "")),
        outputs=gr.JSON(label=metric.name),
        title=f"Metric: {metric.name}",
        description=metric.info.description,
        article=_card_text(HERE / "README.md"),
        flagging_mode="never",
        api_name="predict",  # Gradio 5's default; Gradio 6 would name the endpoint after the function
    )
    if launch:
        demo.launch(**launch_kwargs)
    return demo


# Load the script next to this file by its path: a bare name ("price_regression") would make
# evaluate look for a canonical metric on the Hub (evaluate-metric/price_regression) instead.
module = evaluate.load(os.path.join(HERE, "price_regression.py"))
demo = launch_gradio_widget(module, launch=__name__ == "__main__")
