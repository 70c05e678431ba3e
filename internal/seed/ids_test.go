package seed

import (
	"errors"
	"testing"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestPersonNumber(t *testing.T) {
	tests := []struct {
		name       string
		birth      time.Time
		individual int
		female     bool
		want       string
		wantErr    error // nil: success; errAny: any error
	}{
		// Check digits worked by hand: 17 85 90 123 → K1 = 11-(197 mod 11) = 1,
		// K2 = 11-(154 mod 11) = 11 → 0.
		{name: "male 1990", birth: day(1990, 5, 17), individual: 123, female: false, want: "17859012310"},
		{name: "female 2000s uses 500-999", birth: day(2015, 12, 1), individual: 502, female: true},
		{name: "1940s may use 900-999", birth: day(1948, 2, 29), individual: 951, female: false},
		{name: "1800s use 500-749", birth: day(1899, 12, 31), individual: 600, female: true},
		{name: "sex mismatch", birth: day(1990, 5, 17), individual: 124, female: false, wantErr: errAny},
		{name: "2000s cannot use 000-499", birth: day(2005, 1, 1), individual: 123, female: false, wantErr: errAny},
		{name: "1930s cannot use 900-999", birth: day(1935, 1, 1), individual: 901, female: false, wantErr: errAny},
		{name: "1800s cannot use 750-999", birth: day(1880, 1, 1), individual: 801, female: false, wantErr: errAny},
		{name: "year outside the scheme", birth: day(2040, 1, 1), individual: 501, female: false, wantErr: errAny},
		{name: "individual out of range", birth: day(1990, 1, 1), individual: 1001, female: false, wantErr: errAny},
		// 01 81 90 003: K1 = 11-(134 mod 11) = 9, K2 = 11-(120 mod 11) = 1.
		{name: "hand-checked low number", birth: day(1990, 1, 1), individual: 3, female: false, want: "01819000391"},
		// 01 81 90 001: K1 = 11-(130 mod 11) = 2, K2 sum 100: remainder 1 → 10, no digit.
		{name: "no second check digit", birth: day(1990, 1, 1), individual: 1, female: false, wantErr: ErrNoCheckDigit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PersonNumber(tt.birth, tt.individual, tt.female)
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != errAny && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("PersonNumber = %q, %v, want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("PersonNumber: %v", err)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("PersonNumber = %q, want %q", got, tt.want)
			}
			if !domain.ValidPersonNumber(got) {
				t.Errorf("domain.ValidPersonNumber(%q) = false for a generated number", got)
			}
			if m := got[2:4]; m < "81" || m > "92" {
				t.Errorf("month digits %s are not the synthetic +80 month", m)
			}
			if female := (got[8]-'0')%2 == 0; female != tt.female {
				t.Errorf("sex digit %c does not encode female=%v", got[8], tt.female)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestPersonNumberNoCheckDigit(t *testing.T) {
	// About one base in six has no check digits; every day has some.
	birth := day(1975, 6, 15)
	var unissuable, ok int
	for ind := 0; ind < 500; ind += 2 {
		s, err := PersonNumber(birth, ind, true)
		switch {
		case errors.Is(err, ErrNoCheckDigit):
			unissuable++
		case err != nil:
			t.Fatalf("individual %03d: %v", ind, err)
		default:
			ok++
			if !domain.ValidPersonNumber(s) {
				t.Fatalf("invalid %q", s)
			}
		}
	}
	if unissuable == 0 || ok == 0 {
		t.Fatalf("unissuable=%d ok=%d, want both present", unissuable, ok)
	}
}

func TestOrganisationNumber(t *testing.T) {
	tests := []struct {
		serial  int
		want    string
		wantErr bool
	}{
		{serial: 0, want: "300000002"}, // 3·3 = 9, 11-9 = 2
		{serial: 1, want: "300000010"}, // 9+2 = 11, remainder 0 → 0
		{serial: -1, wantErr: true},
		{serial: 10_000_000, wantErr: true},
	}
	for _, tt := range tests {
		got, err := OrganisationNumber(tt.serial)
		if tt.wantErr {
			if err == nil {
				t.Errorf("OrganisationNumber(%d) = %q, want error", tt.serial, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("OrganisationNumber(%d) = %q, %v, want %q", tt.serial, got, err, tt.want)
		}
	}
	var unissuable int
	for serial := range 200 {
		s, err := OrganisationNumber(serial)
		if errors.Is(err, ErrNoCheckDigit) {
			unissuable++
			continue
		}
		if err != nil || !domain.ValidOrgNumber(s) || s[0] != '3' {
			t.Fatalf("OrganisationNumber(%d) = %q, %v", serial, s, err)
		}
	}
	if unissuable == 0 {
		t.Error("no serial hit the remainder without a check digit; the mod-11 rule is not applied")
	}
}

func TestValidOrganisationNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"974760673", true}, // Brønnøysundregistrene, a public body's published number
		{"300000002", true},
		{"974760674", false},
		{"974760663", false},
		{"97476067", false},
		{"9747606730", false},
		{"97476067x", false},
	}
	for _, tt := range tests {
		if got := domain.ValidOrgNumber(tt.in); got != tt.want {
			t.Errorf("domain.ValidOrgNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestHPRNumber(t *testing.T) {
	for _, serial := range []int{0, 1, 12345, 9_999_999} {
		s, err := HPRNumber(serial)
		if err != nil {
			t.Fatalf("HPRNumber(%d): %v", serial, err)
		}
		if len(s) != 9 || s[:2] != "99" {
			t.Errorf("HPRNumber(%d) = %q, want nine digits starting 99", serial, s)
		}
	}
	for _, serial := range []int{-1, 10_000_000} {
		if s, err := HPRNumber(serial); err == nil {
			t.Errorf("HPRNumber(%d) = %q, want error", serial, s)
		}
	}
}
