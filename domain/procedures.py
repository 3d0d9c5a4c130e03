"""The procedure catalogue a center starts from (core.reference_data seeds it, codes only added when absent).

(code, name, modality, default body part). A center retires or adds codes in
its own rows; an upgrade only adds codes it does not have yet.
"""
from __future__ import annotations

from pydantic import BaseModel


class ProcedureDef(BaseModel):
    code: str
    name: str
    modality: str
    body_part: str


SEED_PROCEDURES: list[ProcedureDef] = [
    ProcedureDef(code=c, name=n, modality=m, body_part=b) for c, n, m, b in [
        ("CT-CHEST", "胸部CT平扫 / CT chest", "CT", "CHEST"),
        ("CT-CHEST-C", "胸部CT增强 / CT chest with contrast", "CT", "CHEST"),
        ("CT-HEAD", "头颅CT平扫 / CT head", "CT", "HEAD"),
        ("CT-HEAD-C", "头颅CT增强 / CT head with contrast", "CT", "HEAD"),
        ("CT-ABD", "腹部CT平扫 / CT abdomen", "CT", "ABDOMEN"),
        ("CT-ABD-C", "腹部CT增强 / CT abdomen with contrast", "CT", "ABDOMEN"),
        ("CT-CTA-HEAD", "头颅CTA / CT angiography head", "CT", "HEAD"),
        ("MR-HEAD", "头颅MR平扫 / MR head", "MR", "HEAD"),
        ("MR-BRAIN", "头颅MR平扫 / MR brain", "MR", "BRAIN"),
        ("MR-ABD-C", "腹部MR增强 / MR abdomen with contrast", "MR", "ABDOMEN"),
        ("MR-LSPINE", "腰椎MR平扫 / MR lumbar spine", "MR", "LSPINE"),
        ("MR-KNEE", "膝关节MR平扫 / MR knee", "MR", "KNEE"),
        ("US-ABD", "腹部超声 / ultrasound abdomen", "US", "ABDOMEN"),
        ("US-PELVIS", "盆腔超声 / ultrasound pelvis", "US", "PELVIS"),
        ("US-TV", "经阴道超声 / transvaginal ultrasound", "US", "PELVIS"),
        ("US-THYROID", "甲状腺超声 / ultrasound thyroid", "US", "NECK"),
        ("DX-CHEST", "胸部正位片 / chest X-ray", "DX", "CHEST"),
        ("CR-CHEST", "胸部正位片(CR) / chest X-ray (CR)", "CR", "CHEST"),
        ("DX-KNEE", "膝关节X线 / knee X-ray", "DX", "KNEE"),
        ("RF-BARIUM", "钡餐造影 / barium study", "RF", "ABDOMEN"),
    ]
]
