package fhirpath

import (
	_ "embed"
	"strings"
)

// FHIR_SPEC_GIT is a git mirror of github.com/google/fhir (its
// spec/hl7.fhir.core/4.0.1 package holds the R4 StructureDefinitions).
//
//go:generate go run ./internal/gen -git $FHIR_SPEC_GIT -out .

// types.txt maps element names to FHIR types (generated from the R4
// StructureDefinitions): JSON says "1974-12-25" and a valueQuantity key,
// FHIRPath must know that is a date and that Observation.value is the
// Quantity.
//
//go:embed types.txt
var typesTxt string

type elemInfo struct {
	types  []string // one type, or the choice types of value[x]
	keys   []string // a choice element's JSON names: valueString, ...
	choice bool
	many   bool
}

type typeInfo struct {
	base  string
	elems map[string]elemInfo
	keys  map[string]keyInfo // by JSON member name
}

// keyInfo is what a JSON member name is: the element (value for
// valueQuantity) and its type.
type keyInfo struct {
	name, typ string
	label     string // in a location: value.ofType(Quantity)
	choice    bool
}

// typeTable is filled once at package init and never written after.
var typeTable = loadTypes(typesTxt)

func loadTypes(txt string) map[string]*typeInfo {
	m := map[string]*typeInfo{}
	get := func(n string) *typeInfo {
		t := m[n]
		if t == nil {
			t = &typeInfo{elems: map[string]elemInfo{}, keys: map[string]keyInfo{}}
			m[n] = t
		}
		return t
	}
	for _, l := range strings.Split(txt, "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, "\t")
		if l[0] == '=' {
			get(f[0][1:]).base = f[1]
			continue
		}
		if len(f) < 4 {
			continue
		}
		e := elemInfo{types: strings.Split(f[2], "|"), choice: strings.Contains(f[3], "x"), many: strings.Contains(f[3], "*")}
		ti := get(f[0])
		if e.choice {
			for _, t := range e.types {
				k := choiceKey(f[1], t)
				e.keys = append(e.keys, k)
				ti.keys[k] = keyInfo{name: f[1], typ: t, label: f[1] + ".ofType(" + t + ")", choice: true}
			}
		} else {
			ti.keys[f[1]] = keyInfo{name: f[1], typ: e.types[0], label: f[1]}
		}
		ti.elems[f[1]] = e
	}
	return m
}

// element finds an element of a type, following the base types.
func element(typ, name string) (elemInfo, bool) {
	for i := 0; typ != "" && i < 8; i++ {
		t := typeTable[typ]
		if t == nil {
			return elemInfo{}, false
		}
		if e, ok := t.elems[name]; ok {
			return e, true
		}
		typ = t.base
	}
	return elemInfo{}, false
}

// keyOf finds what a JSON member of a type is, following the base types.
func keyOf(typ, key string) (keyInfo, bool) {
	for i := 0; typ != "" && i < 8; i++ {
		t := typeTable[typ]
		if t == nil {
			return keyInfo{}, false
		}
		if k, ok := t.keys[key]; ok {
			return k, true
		}
		typ = t.base
	}
	return keyInfo{}, false
}

// known says whether a type is in the table.
func known(typ string) bool { return typeTable[typ] != nil }

// derivesFrom says whether typ is want or a specialisation of it.
func derivesFrom(typ, want string) bool {
	for i := 0; typ != "" && i < 8; i++ {
		if typ == want {
			return true
		}
		t := typeTable[typ]
		if t == nil {
			return false
		}
		typ = t.base
	}
	return false
}

// primitive FHIR types and the System type each maps to.
var primitiveSystem = map[string]string{
	"boolean": "Boolean", "integer": "Integer", "positiveInt": "Integer", "unsignedInt": "Integer",
	"decimal": "Decimal", "string": "String", "code": "String", "id": "String", "uri": "String",
	"url": "String", "canonical": "String", "oid": "String", "uuid": "String", "markdown": "String",
	"base64Binary": "String", "xhtml": "String", "date": "Date", "dateTime": "DateTime",
	"instant": "DateTime", "time": "Time",
}

// quantityTypes are the FHIR types that compare as System.Quantity.
var quantityTypes = map[string]bool{"Quantity": true, "Age": true, "Duration": true, "Distance": true, "Count": true, "SimpleQuantity": true, "MoneyQuantity": true}

// choiceKey is the JSON member name of a choice element with type t.
func choiceKey(name, t string) string {
	return name + strings.ToUpper(t[:1]) + t[1:]
}
