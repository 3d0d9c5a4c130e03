"""The critical-value dictionary (R7.1.3 (2), R8.7 (1)): items, ladders, seed list.

The dictionary is versioned data in the database; this module holds its shape,
the default escalation ladder and the seed a new center starts from. Each
critical value records the dictionary version it was raised under, so editing
the dictionary never changes an open critical value.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from domain.loop import EscalationLevel

# Default ladder: fits inside the 10 minutes the standard measures (R8.7), so a
# person has acknowledged before the clock runs out.
DEFAULT_LADDER: list[EscalationLevel] = [
    EscalationLevel(name="ordering clinician", notify="ordering_clinician", wait_seconds=180),
    EscalationLevel(name="backup clinician", notify="backup_clinician", wait_seconds=180),
    EscalationLevel(name="department head", notify="department_head", wait_seconds=120),
    EscalationLevel(name="phone call by radiology staff", notify="phone_call_task", wait_seconds=120),
]


class CriticalItemSpec(BaseModel):
    """One entry of the dictionary."""

    code: str = Field(pattern=r"^[a-z0-9_]{2,64}$")
    name_zh: str
    name_en: str
    modalities: list[str] = Field(default_factory=lambda: ["*"], description="DICOM modality codes or *")
    body_regions: list[str] = Field(default_factory=lambda: ["*"])
    keywords_zh: list[str] = Field(default_factory=list, description="Text-rule terms (Chinese)")
    keywords_en: list[str] = Field(default_factory=list, description="Text-rule terms (English, lower case)")
    deadline_seconds: int = Field(600, gt=0, description="Notification-to-acknowledgment deadline")
    response_seconds: int = Field(1800, gt=0, description="Acknowledgment-to-clinical-action deadline")
    ladder: list[EscalationLevel] = Field(default_factory=lambda: [r.model_copy() for r in DEFAULT_LADDER])

    def applies_to(self, modality: str) -> bool:
        return "*" in self.modalities or modality in self.modalities

    @property
    def display(self) -> str:
        return f"{self.name_zh} / {self.name_en}"


def _item(code: str, zh: str, en: str, modalities: list[str], regions: list[str],
          kw_zh: list[str], kw_en: list[str]) -> CriticalItemSpec:
    return CriticalItemSpec(code=code, name_zh=zh, name_en=en, modalities=modalities, body_regions=regions,
                            keywords_zh=kw_zh, keywords_en=kw_en)


SEED_ITEMS: list[CriticalItemSpec] = [
    _item("tension_pneumothorax", "张力性气胸", "tension pneumothorax", ["CT", "DX", "CR"], ["CHEST"],
          ["张力性气胸", "气胸"], ["tension pneumothorax", "pneumothorax"]),
    _item("aortic_dissection", "主动脉夹层", "aortic dissection", ["CT", "MR"], ["CHEST", "ABDOMEN"],
          ["主动脉夹层", "夹层动脉瘤"], ["aortic dissection", "dissecting aneurysm"]),
    _item("intracranial_haemorrhage", "急性颅内出血", "acute intracranial haemorrhage", ["CT", "MR"], ["HEAD"],
          ["颅内出血", "脑出血", "硬膜下血肿", "硬膜外血肿", "蛛网膜下腔出血"],
          ["intracranial haemorrhage", "intracranial hemorrhage", "subdural haematoma", "subdural hematoma",
           "epidural hematoma", "subarachnoid haemorrhage", "subarachnoid hemorrhage"]),
    _item("pulmonary_embolism", "肺栓塞", "pulmonary embolism", ["CT"], ["CHEST"],
          ["肺栓塞", "肺动脉栓塞"], ["pulmonary embolism", "pulmonary embolus"]),
    _item("free_air", "腹腔游离气体", "free intraperitoneal air", ["CT", "DX", "CR"], ["ABDOMEN", "CHEST"],
          ["腹腔游离气体", "膈下游离气体", "气腹"], ["free intraperitoneal air", "free air", "pneumoperitoneum"]),
    _item("testicular_torsion", "睾丸扭转", "testicular torsion", ["US"], ["SCROTUM", "PELVIS"],
          ["睾丸扭转"], ["testicular torsion"]),
    _item("ovarian_torsion", "卵巢扭转", "ovarian torsion", ["US", "CT", "MR"], ["PELVIS", "ABDOMEN"],
          ["卵巢扭转", "附件扭转"], ["ovarian torsion", "adnexal torsion"]),
    _item("ruptured_ectopic", "异位妊娠破裂", "ruptured ectopic pregnancy", ["US", "CT"], ["PELVIS", "ABDOMEN"],
          ["异位妊娠破裂", "宫外孕破裂"], ["ruptured ectopic pregnancy", "ruptured ectopic"]),
    _item("cord_compression", "脊髓压迫", "spinal cord compression", ["MR", "CT"], ["SPINE"],
          ["脊髓压迫", "脊髓受压"], ["spinal cord compression", "cord compression"]),
    _item("misplaced_tube", "导管位置异常", "misplaced line or tube", ["DX", "CR", "CT"], ["CHEST", "ABDOMEN"],
          ["导管位置异常", "插管位置异常", "气管插管误入", "胃管误入气管"],
          ["misplaced tube", "malpositioned tube", "misplaced line", "malpositioned catheter"]),
    _item("large_infarction", "大面积脑梗死", "large territory cerebral infarction", ["CT", "MR"], ["HEAD"],
          ["大面积脑梗死", "大面积脑梗塞"], ["large territory infarction", "malignant mca infarction"]),
    _item("mesenteric_ischaemia", "急性肠系膜缺血", "acute mesenteric ischaemia", ["CT"], ["ABDOMEN"],
          ["肠系膜动脉栓塞", "肠系膜缺血"], ["mesenteric ischaemia", "mesenteric ischemia", "mesenteric embolism"]),
]
