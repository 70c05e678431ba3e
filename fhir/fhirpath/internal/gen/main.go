// Command gen writes the two tables the fhirpath package embeds from the R4
// core StructureDefinitions: types.txt (element name → FHIR type, since
// JSON loses date vs string and the choice type of value[x]) and
// constraints.txt (the invariants with their FHIRPath expressions).
//
// Run by go generate in fhir/fhirpath, reading the HL7 package from a git
// mirror (-git) or from an unpacked directory (-dir).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// resources are the resource types whose elements are typed: the served
// types, the ones they contain in practice, and the inputs of HL7's
// FHIRPath test suite. Constraints are generated for the served types only.
var resources = []string{
	"Resource", "DomainResource",
	"Patient", "AllergyIntolerance", "Flag", "Condition", "Procedure", "Consent",
	"MedicationStatement", "Encounter", "Subscription",
	"PractitionerRole", "Practitioner", "Organization", "Medication", "Provenance",
	"Observation", "Questionnaire", "ValueSet", "CodeSystem", "Appointment",
	"ExplanationOfBenefit", "Parameters",
}

var served = map[string]bool{
	"Resource": true, "DomainResource": true,
	"Patient": true, "AllergyIntolerance": true, "Flag": true, "Condition": true, "Procedure": true,
	"Consent": true, "MedicationStatement": true, "Encounter": true, "Subscription": true,
}

type sd struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	Kind           string `json:"kind"`
	Derivation     string `json:"derivation"`
	BaseDefinition string `json:"baseDefinition"`
	Snapshot       struct {
		Element []struct {
			Path             string `json:"path"`
			ContentReference string `json:"contentReference"`
			Max              string `json:"max"`
			Type             []struct {
				Code string `json:"code"`
			} `json:"type"`
			Constraint []struct {
				Key        string `json:"key"`
				Severity   string `json:"severity"`
				Human      string `json:"human"`
				Expression string `json:"expression"`
			} `json:"constraint"`
		} `json:"element"`
	} `json:"snapshot"`
}

func main() {
	gitDir := flag.String("git", "", "git directory of a google/fhir mirror (reads spec/hl7.fhir.core/4.0.1/package at HEAD)")
	dir := flag.String("dir", "", "directory holding StructureDefinition-<Type>.json files")
	out := flag.String("out", ".", "directory to write types.txt and constraints.txt to")
	flag.Parse()
	read := func(name string) ([]byte, error) {
		if *dir != "" {
			return os.ReadFile(filepath.Join(*dir, "StructureDefinition-"+name+".json"))
		}
		if *gitDir == "" {
			return nil, fmt.Errorf("give -git or -dir")
		}
		return exec.Command("git", "-C", *gitDir, "show", "HEAD:spec/hl7.fhir.core/4.0.1/package/StructureDefinition-"+name+".json").Output()
	}
	names, err := datatypes(*gitDir, *dir)
	if err != nil {
		log.Fatal(err)
	}
	names = append(names, resources...)
	var types, cons []string
	for _, n := range names {
		b, err := read(n)
		if err != nil {
			log.Fatalf("read %s: %v", n, err)
		}
		var d sd
		if err := json.Unmarshal(b, &d); err != nil {
			log.Fatalf("%s: %v", n, err)
		}
		if d.Derivation == "constraint" || d.Kind == "logical" {
			continue
		}
		t, c := tables(&d)
		types = append(types, t...)
		if served[d.Type] || d.Kind != "resource" {
			cons = append(cons, c...)
		}
	}
	write(filepath.Join(*out, "types.txt"), types)
	write(filepath.Join(*out, "constraints.txt"), cons)
}

// datatypes lists the primitive and complex types of the core package.
func datatypes(gitDir, dir string) ([]string, error) {
	var files []string
	if dir != "" {
		m, err := filepath.Glob(filepath.Join(dir, "StructureDefinition-*.json"))
		if err != nil {
			return nil, err
		}
		for _, f := range m {
			files = append(files, filepath.Base(f))
		}
	} else {
		b, err := exec.Command("git", "-C", gitDir, "ls-tree", "--name-only", "HEAD", "spec/hl7.fhir.core/4.0.1/package/").Output()
		if err != nil {
			return nil, fmt.Errorf("git ls-tree: %w", err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			files = append(files, filepath.Base(l))
		}
	}
	var out []string
	for _, f := range files {
		n, ok := strings.CutPrefix(f, "StructureDefinition-")
		if !ok {
			continue
		}
		n = strings.TrimSuffix(n, ".json")
		// Types are named with a capital (complex) or small letter
		// (primitive) and no dash; profiles and extensions have dashes.
		if strings.Contains(n, "-") || n == "" {
			continue
		}
		if isDatatype(n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

var complexTypes = map[string]bool{
	"Element": true, "BackboneElement": true, "Extension": true, "Narrative": true, "Meta": true,
	"Address": true, "Age": true, "Annotation": true, "Attachment": true, "CodeableConcept": true, "Coding": true,
	"ContactPoint": true, "Count": true, "Distance": true, "Duration": true, "HumanName": true, "Identifier": true,
	"Money": true, "Period": true, "Quantity": true, "Range": true, "Ratio": true, "Reference": true,
	"SampledData": true, "Signature": true, "Timing": true, "ContactDetail": true, "Contributor": true,
	"DataRequirement": true, "Expression": true, "ParameterDefinition": true, "RelatedArtifact": true,
	"TriggerDefinition": true, "UsageContext": true, "Dosage": true, "SimpleQuantity": true, "MoneyQuantity": true,
}

func isDatatype(n string) bool {
	if complexTypes[n] {
		return true
	}
	return n[0] >= 'a' && n[0] <= 'z' && n != "xhtml"
}

// tables returns a type's lines: "=Type Base" declares it, then
// "Type name type1|type2 flags" per element (flags: * repeats, x choice).
// A backbone element is a type named by its path. Constraint lines are
// "Owner key severity expression human", tab-separated.
func tables(d *sd) (types, cons []string) {
	base := d.BaseDefinition[strings.LastIndex(d.BaseDefinition, "/")+1:]
	if d.Kind == "primitive-type" {
		return []string{"=" + d.Type + "\t" + base}, nil
	}
	types = append(types, "="+d.Type+"\t"+base)
	els := d.Snapshot.Element
	hasChildren := func(p string) bool {
		for _, e := range els {
			if strings.HasPrefix(e.Path, p+".") {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for i, e := range els {
		own := i == 0
		if !own {
			dot := strings.LastIndex(e.Path, ".")
			owner, name := e.Path[:dot], e.Path[dot+1:]
			flags := ""
			if e.Max == "*" || (e.Max != "1" && e.Max != "0" && e.Max != "") {
				flags += "*"
			}
			var ts []string
			switch {
			case e.ContentReference != "":
				ts = []string{strings.TrimPrefix(e.ContentReference, "#")}
			case hasChildren(e.Path):
				b := "BackboneElement"
				if len(e.Type) > 0 {
					b = e.Type[0].Code
				}
				types = append(types, "="+e.Path+"\t"+b)
				ts = []string{e.Path}
				own = true
			default:
				for _, t := range e.Type {
					c := t.Code
					if s, ok := strings.CutPrefix(c, "http://hl7.org/fhirpath/System."); ok {
						c = map[string]string{"String": "string", "Boolean": "boolean", "Integer": "integer", "Decimal": "decimal", "Date": "date", "DateTime": "dateTime", "Time": "time"}[s]
						if c == "" {
							c = "string"
						}
					}
					ts = append(ts, c)
				}
			}
			if inherited(d, owner, name) {
				continue
			}
			if n, ok := strings.CutSuffix(name, "[x]"); ok {
				name, flags = n, flags+"x"
			}
			types = append(types, owner+"\t"+name+"\t"+strings.Join(ts, "|")+"\t"+flags)
		}
		if !own {
			continue
		}
		for _, c := range e.Constraint {
			// ele-1 is checked natively on every element; the dom- and
			// ext- rules belong to DomainResource and Extension, where
			// they are taken once, not from every snapshot repeating them.
			if c.Key == "ele-1" || seen[c.Key] {
				continue
			}
			if d.Kind == "resource" && d.Type != "DomainResource" && strings.HasPrefix(c.Key, "dom-") {
				continue
			}
			if d.Type != "Extension" && c.Key == "ext-1" {
				continue
			}
			seen[c.Key] = true
			cons = append(cons, strings.Join([]string{e.Path, c.Key, c.Severity, oneLine(c.Expression), oneLine(c.Human)}, "\t"))
		}
	}
	return types, cons
}

// inherited says whether an element is the base type's, which the reader
// finds by following the base: it keeps the table a third smaller.
func inherited(d *sd, owner, name string) bool {
	switch name {
	case "id", "extension", "modifierExtension":
		return d.Type != "Element" && d.Type != "BackboneElement" && d.Type != "Resource" && d.Type != "DomainResource"
	case "meta", "implicitRules", "language", "text", "contained":
		return d.Kind == "resource" && owner == d.Type && d.Type != "Resource" && d.Type != "DomainResource"
	}
	return false
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func write(name string, lines []string) {
	f, err := os.Create(name)
	if err != nil {
		log.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
}
