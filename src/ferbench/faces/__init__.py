"""Faces: detectors (blazeface, haar, mediapipe, mtcnn) behind one interface, square crops with margin, tracking."""

from ferbench.faces.boxes import iou_matrix
from ferbench.faces.crop import crop_face, crop_faces, square_box
from ferbench.faces.detectors import DEFAULT_DETECTOR, DETECTORS, Detections, Detector, detect, get_detector
from ferbench.faces.track import IouTracker, Track

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "Detections", "Detector", "IouTracker", "Track", "crop_face",
           "crop_faces", "detect", "get_detector", "iou_matrix", "square_box"]
