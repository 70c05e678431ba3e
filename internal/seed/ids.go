package seed

import (
	"errors"
	"fmt"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/domain"
)

// ErrNoCheckDigit reports an identifier base for which mod 11 yields the
// remainder that has no check digit. Such numbers are never issued, so the
// caller picks another individual number or serial.
var ErrNoCheckDigit = errors.New("seed: no valid check digit for this number")

// individualRangeOK reports whether the individual number (digits 7-9) is one
// the population register hands out to persons born in year. The ranges are
// how the century is encoded, since the number carries only two year digits.
func individualRangeOK(year, individual int) bool {
	switch {
	case year >= 1854 && year <= 1899:
		return individual >= 500 && individual <= 749
	case year >= 1900 && year <= 1999:
		return individual <= 499 || (year >= 1940 && individual >= 900 && individual <= 999)
	case year >= 2000 && year <= 2039:
		return individual >= 500 && individual <= 999
	}
	return false
}

// PersonNumber returns the synthetic fødselsnummer of a person born on birth
// with the given individual number (000-999). The month is written +80, the
// Tenor convention, so the number can never belong to a real person. The last
// digit of the individual number carries the legal sex (even = female) and
// must agree with female; the individual number must lie in the range issued
// for the birth year's century. When the number has no valid check digits the
// error wraps ErrNoCheckDigit and the caller should try another individual
// number.
func PersonNumber(birth time.Time, individual int, female bool) (string, error) {
	year, month, day := birth.Date()
	if individual < 0 || individual > 999 {
		return "", fmt.Errorf("seed: individual number %d outside 000-999", individual)
	}
	if !individualRangeOK(year, individual) {
		return "", fmt.Errorf("seed: individual number %03d is not issued for birth year %d", individual, year)
	}
	if (individual%2 == 0) != female {
		return "", fmt.Errorf("seed: individual number %03d does not match the sex (even digit = female)", individual)
	}
	m := int(month) + domain.TenorMonthOffset
	yy := year % 100
	var d [11]int
	d[0], d[1] = day/10, day%10
	d[2], d[3] = m/10, m%10
	d[4], d[5] = yy/10, yy%10
	d[6], d[7], d[8] = individual/100, individual/10%10, individual%10
	c1, c2, ok := domain.PersonNumberCheckDigits([9]int(d[:9]))
	if !ok {
		return "", fmt.Errorf("seed: person number for %s/%03d: %w", birth.Format(time.DateOnly), individual, ErrNoCheckDigit)
	}
	d[9], d[10] = c1, c2
	var b [11]byte
	for i, v := range d {
		b[i] = byte('0' + v)
	}
	return string(b[:]), nil
}

// synthetic identifier ranges. Real HPR numbers are at most eight digits
// today, and real organisation numbers start with 8 or 9; the Brønnøysund
// test environment (Tenor) uses organisation numbers starting with 3.
const (
	hprSyntheticBase = 990_000_000
	hprSyntheticMax  = 9_999_999
	orgSyntheticBase = 30_000_000
	orgSyntheticMax  = 9_999_999
)

// HPRNumber returns the synthetic HPR number (the health personnel
// register's id) with the given serial, 0 ≤ serial ≤ 9,999,999. The numbers
// are nine digits starting with 99, a range the register has not issued, so
// they cannot name a real health worker. HPR numbers carry no check digit.
func HPRNumber(serial int) (string, error) {
	if serial < 0 || serial > hprSyntheticMax {
		return "", fmt.Errorf("seed: HPR serial %d outside 0-%d", serial, hprSyntheticMax)
	}
	return fmt.Sprintf("%09d", hprSyntheticBase+serial), nil
}

// OrganisationNumber returns the synthetic organisation number
// (organisasjonsnummer) with the given serial, 0 ≤ serial ≤ 9,999,999: the
// eight digits 3<serial> followed by the mod-11 check digit (weights
// 3 2 7 6 5 4 3 2). When that base has no check digit the error wraps
// ErrNoCheckDigit and the caller should use another serial.
func OrganisationNumber(serial int) (string, error) {
	if serial < 0 || serial > orgSyntheticMax {
		return "", fmt.Errorf("seed: organisation serial %d outside 0-%d", serial, orgSyntheticMax)
	}
	base := orgSyntheticBase + serial
	var d [8]int
	for i := 7; i >= 0; i-- {
		d[i] = base % 10
		base /= 10
	}
	c, ok := domain.OrgNumberCheckDigit(d)
	if !ok {
		return "", fmt.Errorf("seed: organisation serial %d: %w", serial, ErrNoCheckDigit)
	}
	return fmt.Sprintf("%08d%d", orgSyntheticBase+serial, c), nil
}
