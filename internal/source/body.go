package source

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
)

// WriteBody writes the document's bytes to w and returns how many it wrote.
// The bytes are rendered from the metadata, so the same document always
// yields the same bytes; a large document's filler is written block by
// block and never held in memory whole.
func (d Document) WriteBody(w io.Writer) (int64, error) {
	head, tail := d.render()
	var n int64
	k, err := w.Write(head)
	n += int64(k)
	if err != nil {
		return n, err
	}
	block := fillerBlock()
	for left := d.Padding; left > 0; {
		chunk := block
		if int64(len(chunk)) > left {
			chunk = chunk[:left]
		}
		k, err := w.Write(chunk)
		n += int64(k)
		left -= int64(k)
		if err != nil {
			return n, err
		}
	}
	k, err = w.Write(tail)
	n += int64(k)
	return n, err
}

// renderedSize is the length of the bytes WriteBody writes.
func (d Document) renderedSize() int64 {
	head, tail := d.render()
	return int64(len(head)) + d.Padding + int64(len(tail))
}

// render returns the bytes before and after the filler.
func (d Document) render() (head, tail []byte) {
	if d.ContentType == "application/xml" {
		return d.renderXML(), nil
	}
	head, tail = d.renderPDF(0)
	if d.Padding > 0 {
		// A large document's exact size is part of its metadata; the few
		// bytes the layout leaves over go into trailer whitespace, so the
		// bytes stay a function of the exported fields alone.
		if pad := d.Size - int64(len(head)) - d.Padding - int64(len(tail)); pad > 0 {
			head, tail = d.renderPDF(int(pad))
		}
	}
	return head, tail
}

// fillerBlock is 64 KiB of fixed pseudo-random bytes, repeated to make up a
// large document's filler. Random rather than zeros so that compression on
// the way cannot make a "200 MB" transfer cheap; fixed so that the bytes are
// reproducible.
var fillerBlock = sync.OnceValue(func() []byte {
	r := rand.New(rand.NewPCG(0x6b6a, 0x736f75726365))
	b := make([]byte, 64<<10)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
})

// pdfLines are the text lines printed on the document's single page.
func (d Document) pdfLines() []string {
	lines := []string{
		d.Author.Name + ", " + d.Department,
		"Dato: " + d.Date.Format("02.01.2006 15:04"),
		"Pasient (fødselsnummer): " + d.PersonNumber,
		"Dokumenttype: " + d.Type.Code + " " + d.Type.Display,
		"",
	}
	lines = append(lines, d.Text...)
	if d.Confidentiality == ConfidentialityBlocked {
		lines = append(lines, "", "Dokumentet er sperret (NORS).")
	}
	return lines
}

// renderPDF lays out a minimal valid PDF 1.4: one A4 page of Helvetica
// text and, for large documents, an embedded stream of d.Padding filler
// bytes. head ends where the filler starts. trailerPad spaces inside the
// trailer dictionary let pdfPaddingFor hit an exact total size without
// moving any offset.
func (d Document) renderPDF(trailerPad int) (head, tail []byte) {
	var content bytes.Buffer
	content.WriteString("BT\n/F1 14 Tf\n16 TL\n56 786 Td\n")
	content.WriteString("(" + pdfString(d.Title) + ") Tj\n/F1 10 Tf\n14 TL\nT*\nT*\n")
	for _, l := range d.pdfLines() {
		content.WriteString("(" + pdfString(l) + ") Tj\nT*\n")
	}
	content.WriteString("ET\n")

	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>")
	obj("<< /Length " + strconv.Itoa(content.Len()) + " >>\nstream\n" + content.String() + "endstream")
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	var filler int64
	if d.Padding > 0 {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n<< /Type /EmbeddedFile /Length %d >>\nstream\n", len(offsets), d.Padding)
		head = bytes.Clone(b.Bytes())
		b.Reset()
		filler = int64(len(head)) + d.Padding
		b.WriteString("\nendstream\nendobj\n")
	}
	xref := filler + int64(b.Len())
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off) // every object precedes the filler
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, strings.Repeat(" ", trailerPad), xref)
	if head == nil {
		return b.Bytes(), nil
	}
	return head, b.Bytes()
}

// pdfPaddingFor finds the filler length that makes d's PDF exactly size
// bytes. The overhead grows by a digit now and then as the filler grows, so
// take the filler that fits with the largest overhead and make up the last
// bytes with trailer whitespace.
func pdfPaddingFor(d Document, size int64) (int64, error) {
	d.ContentType = "application/pdf"
	d.Size = 0
	d.Padding = size // the largest filler needs the most digits
	over := d.renderedSize() - d.Padding
	if size <= over {
		return 0, fmt.Errorf("source: a large document must be over %d bytes", over)
	}
	d.Padding = size - over
	if d.renderedSize() > size {
		return 0, errors.New("source: cannot lay out the large document") // overhead only shrinks with the filler
	}
	d.Size = size
	if d.renderedSize() != size {
		return 0, errors.New("source: large document size mismatch")
	}
	return d.Padding, nil
}

// pdfString encodes s for a PDF literal string in WinAnsiEncoding (which
// equals Latin-1 for æ, ø, å and the other Norwegian letters).
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteByte(byte(r))
		case r == '–':
			b.WriteByte(0x96)
		case r == '—':
			b.WriteByte(0x97)
		case r < 0x20:
			b.WriteByte(' ')
		case r < 0x100:
			b.WriteByte(byte(r))
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}

// renderXML writes a CDA-like clinical document (HL7 v3 namespace): the
// structured form laboratories and some EHRs send.
func (d Document) renderXML() []byte {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<ClinicalDocument xmlns="urn:hl7-org:v3">` + "\n")
	b.WriteString(`  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>` + "\n")
	fmt.Fprintf(&b, "  <id root=\"2.16.578.1.12.4.1.4.101\" extension=\"%s\"/>\n", esc(d.Author.Number+"-"+d.ID))
	fmt.Fprintf(&b, "  <code code=\"%s\" codeSystem=\"2.16.578.1.12.4.1.1.9602\" displayName=\"%s\"/>\n", esc(d.Type.Code), esc(d.Type.Display))
	fmt.Fprintf(&b, "  <title>%s</title>\n", esc(d.Title))
	fmt.Fprintf(&b, "  <effectiveTime value=\"%s\"/>\n", d.Date.Format("20060102150405+0000"))
	fmt.Fprintf(&b, "  <confidentialityCode code=\"%s\" codeSystem=\"2.16.578.1.12.4.1.1.9603\"/>\n", esc(d.Confidentiality))
	b.WriteString("  <languageCode code=\"nb-NO\"/>\n")
	fmt.Fprintf(&b, "  <recordTarget><patientRole><id root=\"2.16.578.1.12.4.1.4.1\" extension=\"%s\"/></patientRole></recordTarget>\n", esc(d.PersonNumber))
	fmt.Fprintf(&b, "  <author><time value=\"%s\"/><assignedAuthor><id nullFlavor=\"NI\"/><representedOrganization><id root=\"2.16.578.1.12.4.1.4.101\" extension=\"%s\"/><name>%s</name></representedOrganization></assignedAuthor></author>\n",
		d.Date.Format("20060102150405+0000"), esc(d.Author.Number), esc(d.Author.Name))
	fmt.Fprintf(&b, "  <custodian><assignedCustodian><representedCustodianOrganization><id root=\"2.16.578.1.12.4.1.4.101\" extension=\"%s\"/><name>%s</name></representedCustodianOrganization></assignedCustodian></custodian>\n",
		esc(d.Author.Number), esc(d.Author.Name))
	b.WriteString("  <component><structuredBody><component><section>\n")
	fmt.Fprintf(&b, "    <title>%s</title>\n    <text>\n", esc(d.Department))
	for _, l := range d.Text {
		fmt.Fprintf(&b, "      <paragraph>%s</paragraph>\n", esc(l))
	}
	b.WriteString("    </text>\n  </section></component></structuredBody></component>\n</ClinicalDocument>\n")
	return []byte(b.String())
}
