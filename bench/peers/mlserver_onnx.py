"""An MLServer runtime that runs an ONNX file in onnxruntime: the fair peer of modelport's OIP route.

The request has one input per ONNX input (FP32 numbers, BYTES text, shape [n, 1]); the response
has the graph's outputs as they come (label index and probabilities). Model settings:
``"implementation": "mlserver_onnx.OnnxRuntimeModel"``, ``"parameters": {"uri": "model.onnx"}``;
``ORT_THREADS`` sets onnxruntime's intra-op threads (default 1: one per worker process).
"""

import os

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class OnnxRuntimeModel(MLModel):
    async def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("ORT_THREADS", "1"))
        self.session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self.text = {i.name for i in self.session.get_inputs() if i.type == "tensor(string)"}
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {}
        for item in payload.inputs:
            if item.name in self.text:
                values = np.array(StringCodec.decode_input(item), dtype=object)
            else:
                values = NumpyCodec.decode_input(item).astype(np.float32, copy=False)
            feeds[item.name] = values.reshape(-1, 1)
        results = self.session.run(self.output_names, feeds)
        return InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(name, value)
                for name, value in zip(self.output_names, results, strict=True)
            ],
        )
