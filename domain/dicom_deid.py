"""DICOM de-identification per PS3.15 Annex E Basic Application Level Confidentiality Profile.

Options applied (and declared in the dataset, E.1.1): Retain Longitudinal Temporal
Information with Modified Dates (every DA/DT shifted by the export's offset) and
Retain Patient Characteristics (sex, age, size, weight kept: research needs them).

What happens to each attribute, in Table E.1-1 terms:
- X (removed): the identifying attributes listed in `REMOVE`, private attributes,
  curves and overlay data/comments;
- Z/D (emptied or a dummy): `EMPTY`, any other person name (PN), the patient's
  name, ID and accession replaced by the export's pseudonyms;
- U (UIDs): every UID outside the DICOM root 1.2.840.10008 (instances, series,
  studies, frames of reference, references to them) is replaced consistently, so
  references inside the export still resolve.
Pixel data is not cleaned, so instances that may carry burned-in text (declared
so, or a secondary-capture-like modality that does not declare "NO") are refused
(`BurnedInText`) rather than exported.
"""
from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from domain.deidentify import Pseudonymizer

DICOM_ROOT = "1.2.840.10008."
REMOVE = frozenset("""
AcquisitionComments AcquisitionContextSequence AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription
ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID AdmittingDate AdmittingDiagnosesCodeSequence
AdmittingDiagnosesDescription AdmittingTime Allergies AuthorObserverSequence BranchOfService CassetteID
CommentsOnThePerformedProcedureStep ConfidentialityConstraintOnPatientDataDescription
ContentCreatorIdentificationCodeSequence ContributionDescription CountryOfResidence CurrentPatientLocation
CustodialOrganizationSequence DataSetTrailingPadding DerivationDescription DetectorID DeviceSerialNumber
DigitalSignaturesSequence DischargeDiagnosisDescription DistributionAddress DistributionName EthnicGroup
FrameComments GantryID GeneratorID HumanPerformerName HumanPerformerOrganization IconImageSequence
IdentifyingComments ImageComments ImagePresentationComments ImagingServiceRequestComments Impressions
InstitutionAddress InstitutionalDepartmentName InstitutionCodeSequence InstitutionName IssuerOfAdmissionID
IssuerOfPatientID LastMenstrualDate MedicalAlerts MedicalRecordLocator MilitaryRank ModifiedAttributesSequence
ModifyingDeviceID ModifyingDeviceManufacturer NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults
Occupation OperatorIdentificationSequence OperatorsName OrderCallbackPhoneNumber OrderEnteredBy
OrderEntererLocation OriginalAttributesSequence OtherPatientIDs OtherPatientIDsSequence OtherPatientNames
ParticipantSequence PatientAddress PatientBirthName PatientBirthTime PatientComments PatientInsurancePlanCodeSequence
PatientMotherBirthName PatientPrimaryLanguageCodeSequence PatientReligiousPreference PatientState
PatientTelecomInformation PatientTelephoneNumbers PatientTransportArrangements PerformedLocation
PerformedProcedureStepDescription PerformedProcedureStepID PerformingPhysicianIdentificationSequence
PerformingPhysicianName PersonAddress PersonTelephoneNumbers PhysicianApprovingInterpretation
PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence PhysiciansReadingStudyIdentificationSequence PlateID
PreMedication PregnancyStatus ReasonForStudy ReasonForTheImagingServiceRequest ReferencedPatientAliasSequence
ReferencedPatientSequence ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
ReferringPhysicianTelephoneNumbers RegionOfResidence RequestAttributesSequence RequestedContrastAgent
RequestedProcedureComments RequestedProcedureID RequestedProcedureLocation RequestingPhysician RequestingService
ResponsibleOrganization ResponsiblePerson ResultsComments ResultsDistributionListSequence ResultsIDIssuer
ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
ScheduledProcedureStepDescription ScheduledProcedureStepLocation ServiceEpisodeDescription ServiceEpisodeID
SeriesDescription SmokingStatus SpecialNeeds StationName StudyComments StudyDescription StudyIDIssuer TextComments
TextString TopicAuthor TopicKeywords TopicSubject TopicTitle VerifyingOrganization VisitComments
""".split())
EMPTY = frozenset("""
ContentCreatorName FillerOrderNumberImagingServiceRequest PatientBirthDate PlacerOrderNumberImagingServiceRequest
ReferringPhysicianName StudyID VerifyingObserverName ProtocolName
""".split())
# Secondary capture and the like often carry names in the pixels; without a declared "NO" they stay home.
BURN_IN_SUSPECT_MODALITIES = frozenset({"SC", "OT", "US", "ES", "XC", "DOC", "GM", "SM"})
# (0012,0063) is LO (64 characters): the codes below say it in full.
METHOD = "PS3.15 basic profile, modified dates, patient characteristics"
METHOD_CODES = (("113100", "Basic Application Confidentiality Profile"),
                ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
                ("113108", "Retain Patient Characteristics Option"))


class BurnedInText(ValueError):
    """The instance may show identifying text in its pixels; the basic profile alone cannot clean it."""


def may_have_burned_in_text(ds: Dataset) -> bool:
    declared = str(ds.get("BurnedInAnnotation", "")).upper()
    if declared == "YES":
        return True
    return declared != "NO" and str(ds.get("Modality", "")).upper() in BURN_IN_SUSPECT_MODALITIES


def _is_curve_or_overlay_text(tag) -> bool:
    return 0x5000 <= tag.group <= 0x50FF or (0x6000 <= tag.group <= 0x60FF and tag.element in (0x3000, 0x4000))


def _walk(ds: Dataset, p: Pseudonymizer) -> None:
    for elem in list(ds):
        kw, vr = elem.keyword, elem.VR
        if kw in REMOVE or _is_curve_or_overlay_text(elem.tag):
            del ds[elem.tag]
        elif vr == "SQ":
            for item in elem.value or []:
                _walk(item, p)
        elif kw in EMPTY or (vr == "PN" and kw != "PatientName"):
            elem.value = ""
        elif vr == "UI" and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            mapped = [v if str(v).startswith(DICOM_ROOT) else p.uid(str(v)) for v in values]
            elem.value = mapped if elem.VM > 1 else mapped[0]
        elif vr == "DA" and elem.value:
            elem.value = p.shift_da(str(elem.value))
        elif vr == "DT" and elem.value:
            elem.value = p.shift_dt(str(elem.value))


def deidentify(ds: Dataset, p: Pseudonymizer, patient_pseudonym: str, exam_pseudonym: str) -> Dataset:
    """De-identify `ds` in place and return it; raises BurnedInText for instances that must not leave."""
    if may_have_burned_in_text(ds):
        raise BurnedInText(f"instance of modality {ds.get('Modality', '?')} may show text in its pixels")
    ds.remove_private_tags()
    _walk(ds, p)
    ds.PatientName = patient_pseudonym
    ds.PatientID = patient_pseudonym
    ds.AccessionNumber = exam_pseudonym  # Z permits a dummy: it links images to the exported record
    ds.PatientIdentityRemoved = "YES"
    ds.LongitudinalTemporalInformationModified = "MODIFIED"
    ds.DeidentificationMethod = METHOD
    codes = []
    for value, meaning in METHOD_CODES:
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
        codes.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(codes)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds
