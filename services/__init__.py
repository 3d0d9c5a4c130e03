"""Use cases shared by every edge (REST, HL7, DICOM): one way to do each thing."""
