package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteMarkdown writes the report for people: totals per group, then every
// check with its outcome and reason.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# kjernejournal conformance report\n\n")
	fmt.Fprintf(&b, "- Server: %s\n- Started: %s\n- Took: %s\n- Totals: %d checks, %d passed, %d failed, %d skipped\n\n",
		r.BaseURL, r.Started.UTC().Format(time.RFC3339), r.Elapsed.Round(time.Millisecond),
		len(r.Results), r.Count("", Pass), r.Count("", Fail), r.Count("", Skip))
	b.WriteString("| Group | Checks | Passed | Failed | Skipped |\n|---|---:|---:|---:|---:|\n")
	for _, g := range Groups {
		n := r.Count(g.Name, Pass) + r.Count(g.Name, Fail) + r.Count(g.Name, Skip)
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", g.Title, n, r.Count(g.Name, Pass), r.Count(g.Name, Fail), r.Count(g.Name, Skip))
	}
	for _, g := range Groups {
		first := true
		for _, res := range r.Results {
			if res.Check.Group != g.Name {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n## %s\n\n| Check | Result | Description | Reason |\n|---|---|---|---|\n", g.Title)
				first = false
			}
			reason := res.Message
			if reason == "" {
				reason = res.Note
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", res.Check.ID, strings.ToUpper(string(res.Status)),
				cell(res.Check.Title), cell(reason))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", "<br>")
}

// JUnit XML, as CI systems read it: one testsuite per group.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// WriteJUnit writes the report as JUnit XML.
func (r *Report) WriteJUnit(w io.Writer) error {
	out := junitSuites{Name: "kjernejournal conformance " + r.BaseURL, Tests: len(r.Results),
		Failures: r.Count("", Fail), Skipped: r.Count("", Skip), Time: seconds(r.Elapsed)}
	for _, g := range Groups {
		s := junitSuite{Name: g.Name}
		var took time.Duration
		for _, res := range r.Results {
			if res.Check.Group != g.Name {
				continue
			}
			c := junitCase{Name: res.Check.ID, Classname: "conformance." + g.Name, Time: seconds(res.Elapsed), SystemOut: res.Check.Title}
			if res.Note != "" {
				c.SystemOut += "\n" + res.Note
			}
			switch res.Status {
			case Fail:
				c.Failure = &junitMessage{Message: firstLine(res.Message), Text: res.Message}
				s.Failures++
			case Skip:
				c.Skipped = &junitMessage{Message: firstLine(res.Message), Text: res.Message}
				s.Skipped++
			}
			took += res.Elapsed
			s.Cases = append(s.Cases, c)
		}
		if len(s.Cases) == 0 {
			continue
		}
		s.Tests, s.Time = len(s.Cases), seconds(took)
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
