package search

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Fold normalises a string for string search: the R4 search specification
// asks for matching that is case-insensitive and ignores accents and other
// diacritical marks. Fold lowercases, removes combining marks (so a
// decomposed "a\u030a" folds like the precomposed "å"), collapses runs of
// white space to one space and trims the ends.
//
// Letters that are not a base letter plus a diacritic are spelled out the
// way Unicode's and the Nordic libraries' transliterations do: Ø and ø fold
// to "o" (Ødegård and odegard match), Æ/æ to "ae", Å/å to "a", Œ to "oe",
// ß to "ss", Þ to "th", Ð/Đ to "d", Ł to "l", Ŋ to "n", Ŧ to "t". The older
// Norwegian spelling "aa" for "å" is not folded: "Aasen" does not match
// "Åsen", as in the population register, where they are different names.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' {
			ascii = false
			break
		}
	}
	if ascii && !strings.Contains(s, "  ") && (s == "" || s[0] != ' ' && s[len(s)-1] != ' ') {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if f, ok := foldTable[r]; ok {
			b.WriteString(f)
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var foldTable = func() map[rune]string {
	groups := []struct{ from, to string }{
		{"ÀÁÂÃÄÅàáâãäåĀāĂăĄąǍǎǺǻ", "a"},
		{"ÆæǼǽ", "ae"},
		{"ÇçĆćĈĉĊċČč", "c"},
		{"ÐðĎďĐđ", "d"},
		{"ÈÉÊËèéêëĒēĔĕĖėĘęĚě", "e"},
		{"ĜĝĞğĠġĢģǦǧǤǥ", "g"},
		{"ĤĥĦħ", "h"},
		{"ÌÍÎÏìíîïĨĩĪīĬĭĮįİı", "i"},
		{"Ĳĳ", "ij"},
		{"Ĵĵ", "j"},
		{"ĶķĸǨǩ", "k"},
		{"ĹĺĻļĽľĿŀŁł", "l"},
		{"ÑñŃńŅņŇňŉŊŋ", "n"},
		{"ÒÓÔÕÖØòóôõöøŌōŎŏŐőǾǿ", "o"},
		{"Œœ", "oe"},
		{"ŔŕŖŗŘř", "r"},
		{"ŚśŜŝŞşŠšſ", "s"},
		{"ß", "ss"},
		{"ŢţŤťŦŧ", "t"},
		{"Þþ", "th"},
		{"ÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲų", "u"},
		{"Ŵŵ", "w"},
		{"ÝýÿŶŷŸ", "y"},
		{"ŹźŻżŽžƷʒǮǯ", "z"},
	}
	m := make(map[rune]string, 256)
	for _, g := range groups {
		for _, r := range g.from {
			m[r] = g.to
		}
	}
	return m
}()
