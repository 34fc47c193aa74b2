"""Print the ONNX operators the frontend supports, as the Markdown table of
``docs/onnx-frontend.md``: ``python -m cimflow.frontend.list_ops``."""

from cimflow.frontend.supported import ops_table

if __name__ == "__main__":
    print(ops_table(), end="")
