package domain

import "time"

// Month and day offsets in person numbers: D-numbers add 40 to the day;
// the test registers shift the month, NAV's older test numbers by 40 and
// the Tenor test register by 80 (which is what internal/seed generates, so
// a synthetic number can never be a real person's).
const (
	DNumberDayOffset  = 40
	NAVMonthOffset    = 40
	TenorMonthOffset  = 80
	personNumberLen   = 11
	orgNumberLen      = 9
	noCheckDigit      = -1
	checkDigitModulus = 11
)

var (
	fnrWeights1 = [9]int{3, 7, 6, 1, 8, 9, 4, 5, 2}
	fnrWeights2 = [10]int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
	orgWeights  = [8]int{3, 2, 7, 6, 5, 4, 3, 2}
)

// mod11 returns the check digit for digits weighted by weights, or
// noCheckDigit when the remainder leaves none (11 - 1 = 10): such numbers
// are never issued.
func mod11(digits, weights []int) int {
	sum := 0
	for i, w := range weights {
		sum += digits[i] * w
	}
	switch c := checkDigitModulus - sum%checkDigitModulus; c {
	case 11:
		return 0
	case 10:
		return noCheckDigit
	default:
		return c
	}
}

// PersonNumberCheckDigits returns the two check digits of a person number
// whose first nine digits are d; ok is false when the number has none
// (it is never issued, so the caller picks another individual number).
func PersonNumberCheckDigits(d [9]int) (c1, c2 int, ok bool) {
	c1 = mod11(d[:], fnrWeights1[:])
	if c1 == noCheckDigit {
		return 0, 0, false
	}
	ten := append(d[:], c1)
	c2 = mod11(ten, fnrWeights2[:])
	if c2 == noCheckDigit {
		return 0, 0, false
	}
	return c1, c2, true
}

// OrgNumberCheckDigit returns the check digit of an organisation number
// whose first eight digits are d; ok is false when there is none.
func OrgNumberCheckDigit(d [8]int) (int, bool) {
	c := mod11(d[:], orgWeights[:])
	return c, c != noCheckDigit
}

// IssuedCentury returns the birth year encoded by the two year digits yy
// and the individual number (digits 7-9), or -1 when the population
// register never issues that combination: the number carries two year
// digits only, and the individual number's range tells the century.
func IssuedCentury(yy, individual int) int {
	switch {
	case individual <= 499:
		return 1900 + yy
	case individual <= 749 && yy >= 54:
		return 1800 + yy
	case individual <= 999 && yy <= 39:
		return 2000 + yy
	case individual >= 900 && yy >= 40:
		return 1900 + yy
	}
	return -1
}

// ValidPersonNumber reports whether s is a well-formed Norwegian person
// number: 11 digits, both mod-11 check digits right, an individual number
// issued for the encoded century and a date that exists. It accepts
// fødselsnummer, D-numbers (day +40), and the test conventions that shift
// the month: +40 (NAV) and +80 (Tenor).
func ValidPersonNumber(s string) bool {
	if len(s) != personNumberLen {
		return false
	}
	var d [personNumberLen]int
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		d[i] = int(c - '0')
	}
	c1, c2, ok := PersonNumberCheckDigits([9]int(d[:9]))
	if !ok || c1 != d[9] || c2 != d[10] {
		return false
	}
	day := d[0]*10 + d[1]
	if day > DNumberDayOffset {
		day -= DNumberDayOffset
	}
	month := d[2]*10 + d[3]
	switch {
	case month > TenorMonthOffset:
		month -= TenorMonthOffset
	case month > NAVMonthOffset:
		month -= NAVMonthOffset
	}
	if day < 1 || day > 31 || month < 1 || month > 12 {
		return false
	}
	year := IssuedCentury(d[4]*10+d[5], d[6]*100+d[7]*10+d[8])
	if year < 0 {
		return false
	}
	// time.Date normalises 31 February into March; a round trip exposes it.
	t := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	return t.Day() == day && t.Month() == time.Month(month)
}

// ValidOrgNumber reports whether s is a nine-digit organisation number
// with a right check digit.
func ValidOrgNumber(s string) bool {
	if len(s) != orgNumberLen {
		return false
	}
	var d [orgNumberLen]int
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		d[i] = int(s[i] - '0')
	}
	c, ok := OrgNumberCheckDigit([8]int(d[:8]))
	return ok && c == d[8]
}
