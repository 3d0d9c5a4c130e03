"""DICOM edge of RadLoop: one listener (AE) serving every SCP the center needs.

`listener.py` builds and runs the AE; `handlers/` holds one module per DIMSE
service; `store.py` keeps received bytes in a UID-addressed file store;
`index.py` and `worklist.py` are the database side; `loop_bridge.py` turns MPPS
into exam-loop updates.
"""
