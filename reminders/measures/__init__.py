"""Validated questionnaires (PHQ-9, GAD-7, PCL-5, pain) kept as data, and their pure scoring."""
