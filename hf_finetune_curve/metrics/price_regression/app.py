import os

import evaluate
from evaluate.utils import launch_gradio_widget


# Load the script next to this file by its path: a bare name ("price_regression") would make
# evaluate look for a canonical metric on the Hub (evaluate-metric/price_regression) instead.
module = evaluate.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "price_regression.py"))
launch_gradio_widget(module)
