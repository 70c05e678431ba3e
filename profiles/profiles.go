// Package profiles holds the conformance resources the server is built
// from. They are embedded so that the binary, its tests and its
// CapabilityStatement always use the same definitions.
package profiles

import _ "embed"

// SearchParameters is a collection Bundle of the R4 SearchParameter
// resources for the served types. Shared R4 definitions (clinical-patient,
// clinical-date, ...) keep their R4 url but list only the served types in
// base and expression, so a reader can compare them with the R4
// specification line by line. Parameters R4 does not define (Flag status,
// category and code) carry a kjernejournal url.
//
// Expressions use the FHIRPath subset fhir/search evaluates: dotted paths,
// "|" unions, ".where(resolve() is Type)" and "(path as Type)".
//
//go:embed search-parameters.json
var SearchParameters []byte

// PrivacyConsent is the StructureDefinition KjPrivacyConsent: a citizen's
// privacy setting (reservation, restriction, block of named health
// personnel, removed portal access) as an R4 Consent. internal/privacy
// enforces it; keep the two in step.
//
//go:embed consent-privacy.json
var PrivacyConsent []byte

// PrivacySettingSource is the extension that marks a privacy setting the
// server set on its own (the automatic reservation of a person with a
// secret address), which the citizen cannot lift.
//
//go:embed extension-privacy-setting-source.json
var PrivacySettingSource []byte

// PrivacySettingCodes is the CodeSystem of the kinds of privacy setting
// (reservasjon, sperring, blokkering, portaltilgang); PrivacySettingValueSet
// holds all of them.
//
//go:embed codesystem-privacy-setting.json
var PrivacySettingCodes []byte

//go:embed valueset-privacy-setting.json
var PrivacySettingValueSet []byte

// RecordSectionCodes is the CodeSystem of the record sections a citizen
// can restrict; RecordSectionValueSet holds all of them.
//
//go:embed codesystem-record-section.json
var RecordSectionCodes []byte

//go:embed valueset-record-section.json
var RecordSectionValueSet []byte

// PrivacySettingSourceCodes is the CodeSystem of the sources the
// PrivacySettingSource extension names.
//
//go:embed codesystem-privacy-setting-source.json
var PrivacySettingSourceCodes []byte

// AllergyIntoleranceProfile is the StructureDefinition KjAllergyIntolerance:
// an allergy or intolerance reported by health personnel. AllergySubstances
// is the ValueSet its code is bound to. internal/profile enforces it; keep
// the two in step.
//
//go:embed allergyintolerance-kj.json
var AllergyIntoleranceProfile []byte

//go:embed valueset-allergy-substance.json
var AllergySubstances []byte

// FlagProfile is the StructureDefinition KjFlag: critical information other
// than allergies, typed by CriticalInfoTypeCodes in Flag.category.
// internal/profile enforces it; keep the two in step.
//
//go:embed flag-kj.json
var FlagProfile []byte

// CriticalInfoTypeCodes is the CodeSystem kritisk-info-type of the kinds of
// critical information; CriticalInfoTypeValueSet holds all of them.
//
//go:embed codesystem-kritisk-info-type.json
var CriticalInfoTypeCodes []byte

//go:embed valueset-kritisk-info-type.json
var CriticalInfoTypeValueSet []byte
