"""Deploy: Recognizer (detect → crop → classify), ONNX/TFLite export, video/webcam frame loop, HTTP service."""
