"""Faces: detectors (haar, mediapipe, mtcnn) behind one interface, and square crops with margin."""

from ferbench.faces.crop import crop_face, crop_faces, square_box
from ferbench.faces.detectors import DETECTORS, Detections, Detector, detect, get_detector

__all__ = ["DETECTORS", "Detections", "Detector", "crop_face", "crop_faces", "detect", "get_detector", "square_box"]
