package domain

import "testing"

func TestValidPersonNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"17859012310", true},  // synthetic, Tenor month +80
		{"17059012355", true},  // ordinary fødselsnummer
		{"57059012349", true},  // D-number: day +40
		{"17459012338", true},  // NAV test number: month +40
		{"01819000391", true},  // synthetic, hand checked
		{"17859012311", false}, // second check digit wrong
		{"17859012300", false}, // first check digit wrong
		{"17859012320", false}, // first check digit wrong, second recomputed wrongly too
		{"27859012310", false}, // a digit changed: check digits no longer match
		{"1785901231", false},  // too short
		{"178590123100", false},
		{"1785901231a", false},
		{"", false},
		{"00000000000", false}, // day 0; check digits happen to be 0 0
		{"31029012345", false},
	}
	for _, tt := range tests {
		if got := ValidPersonNumber(tt.in); got != tt.want {
			t.Errorf("ValidPersonNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestValidPersonNumberDates runs dates that do not exist and century
// combinations never issued through numbers with correct check digits, so
// that only the date and range rules can reject them.
func TestValidPersonNumberDates(t *testing.T) {
	tests := []struct {
		base string // nine digits DDMMYYIII
		want bool
	}{
		{"290200001", false}, // individual 001 reads as 1900, which was no leap year
		{"290204501", true},  // 29.02.2004 (leap year)
		{"290200501", true},  // 29.02.2000 (leap year: divisible by 400)
		{"290203501", false}, // 29.02.2003 does not exist
		{"310490001", false}, // 31 April
		{"001090001", false}, // day 0
		{"321090001", false}, // day 32
		{"011390001", false}, // month 13
		{"017390001", false}, // month 33: neither +40 nor +80
		{"019390001", false}, // month 93 → 13
		{"010145603", false}, // 1945 with 500-749: never issued
		{"010160901", true},  // 1960 with 900-999
		{"010130902", true},  // 900-999 with YY 30 reads as 2030
		{"710190001", true},  // D-number 31.01.1990
		{"720190002", false}, // D-number day 32
	}
	for _, tt := range tests {
		var d [11]int
		for i := range 9 {
			d[i] = int(tt.base[i] - '0')
		}
		c1, c2, ok := PersonNumberCheckDigits([9]int(d[:9]))
		if !ok {
			t.Fatalf("test base %s has no check digits; pick another", tt.base)
		}
		d[9], d[10] = c1, c2
		var b [11]byte
		for i, v := range d {
			b[i] = byte('0' + v)
		}
		s := string(b[:])
		if got := ValidPersonNumber(s); got != tt.want {
			t.Errorf("ValidPersonNumber(%s) = %v, want %v", s, got, tt.want)
		}
	}
}

func TestValidOrgNumber(t *testing.T) {
	for in, want := range map[string]bool{
		"300000002": true, "300000010": true, "974589095": true,
		"300000003": false, "30000000": false, "3000000020": false, "30000000a": false, "": false,
	} {
		if got := ValidOrgNumber(in); got != want {
			t.Errorf("ValidOrgNumber(%q) = %v, want %v", in, got, want)
		}
	}
}
