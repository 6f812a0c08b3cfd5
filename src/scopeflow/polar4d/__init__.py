"""polar4d: 3D polarization (incl. the along-beam component) from 4D-STEM by deep learning."""
