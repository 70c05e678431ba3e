// Package notify implements change notifications for critical information:
// FHIR R4 Subscriptions (rest-hook) on AllergyIntolerance and Flag for one
// patient, with the payloads of the topic-based subscriptions backport
// (http://hl7.org/fhir/uv/subscriptions-backport) limited to id-only and
// empty.
//
// The national rules (DOMAIN.md, rule 9) forbid pushing health data into a
// local record automatically, so a notification carries no health data: at
// most the ids of the changed resources and the patient reference. The
// receiver fetches the resources itself, with its own token and access
// basis, and the HP decides what to journal. The full-resource payload is
// therefore refused.
package notify

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kjernejournal/kjernejournal/internal/loopback"
)

// Payload contents (the backport's backport-payload-content codes) this
// server accepts.
const (
	PayloadIDOnly = "id-only"
	PayloadEmpty  = "empty"
)

// Subscription statuses (R4 SubscriptionStatus value set).
const (
	StatusRequested = "requested"
	StatusActive    = "active"
	StatusError     = "error"
	StatusOff       = "off"
)

// URLs of the extensions the package reads and writes.
const (
	// ExtPayloadContent is the backport's payload-content extension, on
	// Subscription.channel.payload.
	ExtPayloadContent = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content"
	// ExtFailureCount is this server's count of consecutive failed
	// delivery attempts, on the Subscription as served (stored
	// Subscriptions of earlier versions carry it too).
	ExtFailureCount = "https://kjernejournal.no/fhir/StructureDefinition/subscription-failure-count"
	// ExtEventCount is this server's events-since-subscription-start, on
	// the Subscription as served (valueString: R4 has no integer64).
	ExtEventCount = "https://kjernejournal.no/fhir/StructureDefinition/subscription-event-count"
	// statusProfile is the backport's R4 SubscriptionStatus profile.
	statusProfile = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
	mimeFHIRJSON  = "application/fhir+json"
)

// WatchedTypes are the resource types a Subscription may watch.
// They are the critical information of the national model; a Subscription
// on Consent hears of the critical Consents only (limits of
// life-prolonging treatment, treatment clarifications), never of privacy
// settings.
var WatchedTypes = []string{"AllergyIntolerance", "Flag", "Condition", "Procedure", "Consent"}

// Subscription is a parsed, accepted Subscription together with the state
// the server keeps for it.
type Subscription struct {
	ID           string
	Status       string // active, error or off (requested is accepted as active)
	Reason       string
	Criteria     string // as given, e.g. "Flag?patient=123"
	ResourceType string // AllergyIntolerance or Flag
	Patient      string // the FHIR id of the one watched patient
	Endpoint     string // https URL (http on loopback in development)
	Payload      string // PayloadIDOnly or PayloadEmpty
	Headers      []string
	End          time.Time // zero: no end

	// SubscriberHPR is the HPR number of the health personnel whose token
	// created the subscription, set by the server (ExtSubscriber): the
	// access rules check the patient's blocks against it before every
	// notification.
	SubscriberHPR string

	// Server state, not taken from a client's body.
	Error    string // the last delivery error, empty when the last attempt succeeded
	Failures int    // consecutive failed delivery attempts
	Events   int64  // events-since-subscription-start

	// ServerBase is the server's base URL (no trailing slash), used for
	// absolute references in notifications. It is not stored; empty gives
	// relative references and no fullUrl.
	ServerBase string
}

// Issue is one reason a Subscription was refused.
type Issue struct {
	Path    string // FHIRPath-like element path, e.g. "Subscription.channel.endpoint"
	Code    string // OperationOutcome issue type: required, value, invalid, not-supported, security, business-rule
	Message string
}

// Error is returned by ParseSubscription; the REST layer turns it into an
// OperationOutcome (one issue each, with Path as expression), status 422
// (400 for unparsable JSON).
type Error struct {
	Issues []Issue
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		parts[i] = is.Path + ": " + is.Message
	}
	return "invalid Subscription: " + strings.Join(parts, "; ")
}

type extension struct {
	URL          string `json:"url"`
	ValueCode    string `json:"valueCode,omitempty"`
	ValueString  string `json:"valueString,omitempty"`
	ValueInteger *int   `json:"valueInteger,omitempty"`
}

type element struct {
	Extension []extension `json:"extension,omitempty"`
}

type fhirMeta struct {
	VersionID   string `json:"versionId,omitempty"`
	LastUpdated string `json:"lastUpdated,omitempty"`
}

type fhirChannel struct {
	Type     string   `json:"type"`
	Endpoint string   `json:"endpoint,omitempty"`
	Payload  string   `json:"payload,omitempty"`
	PayloadX *element `json:"_payload,omitempty"`
	Header   []string `json:"header,omitempty"`
}

// fhirSubscription is the JSON of an R4 Subscription, as far as this
// package reads or writes it.
type fhirSubscription struct {
	ResourceType string       `json:"resourceType"`
	ID           string       `json:"id,omitempty"`
	Meta         *fhirMeta    `json:"meta,omitempty"`
	Extension    []extension  `json:"extension,omitempty"`
	Status       string       `json:"status"`
	End          string       `json:"end,omitempty"`
	Reason       string       `json:"reason"`
	Criteria     string       `json:"criteria"`
	Error        string       `json:"error,omitempty"`
	Channel      *fhirChannel `json:"channel"`
}

var (
	idRe       = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	headerName = regexp.MustCompile(`^[!#$%&'*+\-.^_` + "`" + `|~0-9A-Za-z]+$`)
)

// forbiddenHeaders may not be set through channel.header: the server sets
// them, or they would change how the request is framed.
var forbiddenHeaders = map[string]bool{
	"content-type": true, "content-length": true, "host": true, "transfer-encoding": true,
	"connection": true, "te": true, "upgrade": true, "trailer": true,
}

// ParseSubscription parses and checks a Subscription a client sent (create
// or update). dev is the development configuration: it also allows an
// endpoint on a loopback host, over http or https, without the allow-list.
// allow lists host suffixes: "sykehus.no" allows sykehus.no and every host
// under it; a leading dot (".sykehus.no") allows only hosts under it.
//
// The result has Status active (or off, if the client asked for off) and no
// server state; the REST layer sets ID and keeps the stored counters on
// update. Refusals are an *Error listing every issue found.
func ParseSubscription(body []byte, dev bool, allow []string) (Subscription, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return Subscription{}, &Error{Issues: []Issue{{Path: "Subscription", Code: "structure", Message: "the body is not a JSON object: " + err.Error()}}}
	}
	var fs fhirSubscription
	if err := json.Unmarshal(body, &fs); err != nil {
		return Subscription{}, &Error{Issues: []Issue{{Path: "Subscription", Code: "structure", Message: "the body is not a valid R4 Subscription: " + err.Error()}}}
	}
	var issues []Issue
	add := func(path, code, format string, args ...any) {
		issues = append(issues, Issue{Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
	}
	if fs.ResourceType != "Subscription" {
		add("Subscription.resourceType", "invalid", "resourceType must be Subscription, not %q", fs.ResourceType)
	}
	if fs.ID != "" && !idRe.MatchString(fs.ID) {
		add("Subscription.id", "value", "%q is not a valid FHIR id", fs.ID)
	}
	sub := Subscription{ID: fs.ID, Reason: fs.Reason, Criteria: fs.Criteria}

	switch fs.Status {
	case StatusRequested, StatusActive:
		sub.Status = StatusActive
	case StatusOff:
		sub.Status = StatusOff
	case "":
		add("Subscription.status", "required", "status is required (requested, active or off)")
	case StatusError:
		add("Subscription.status", "business-rule", "status error is set by the server, not by a client; send requested, active or off")
	default:
		add("Subscription.status", "value", "unknown status %q; send requested, active or off", fs.Status)
	}
	if strings.TrimSpace(fs.Reason) == "" {
		add("Subscription.reason", "required", "reason is required")
	}
	if fs.Error != "" {
		add("Subscription.error", "business-rule", "error is set by the server, not by a client")
	}
	if fs.End != "" {
		t, err := parseInstant(fs.End)
		if err != nil {
			add("Subscription.end", "value", "end %q is not a FHIR instant with a time zone", fs.End)
		}
		sub.End = t
	}

	typ, patient, why := parseCriteria(fs.Criteria)
	if why != "" {
		add("Subscription.criteria", "not-supported", "%s", why)
	}
	sub.ResourceType, sub.Patient = typ, patient

	ch := fs.Channel
	if ch == nil {
		add("Subscription.channel", "required", "channel is required")
		return sub, &Error{Issues: issues}
	}
	if ch.Type != "rest-hook" {
		add("Subscription.channel.type", "not-supported", "only channel type rest-hook is supported, not %q", ch.Type)
	}
	if why := checkEndpoint(ch.Endpoint, dev, allow); why != "" {
		add("Subscription.channel.endpoint", "security", "%s", why)
	}
	sub.Endpoint = ch.Endpoint

	content := ""
	if ch.PayloadX != nil {
		for _, e := range ch.PayloadX.Extension {
			if e.URL != ExtPayloadContent {
				continue
			}
			if content != "" {
				add("Subscription.channel.payload.extension", "invalid", "the payload-content extension is repeated")
			}
			content = e.ValueCode
			if content == "" {
				content = "(no valueCode)"
			}
		}
	}
	switch {
	case ch.Payload == "" && content == "":
		// R4: no payload means notifications without a body's content.
		sub.Payload = PayloadEmpty
	case ch.Payload != "" && ch.Payload != mimeFHIRJSON:
		add("Subscription.channel.payload", "not-supported", "payload must be %s, not %q", mimeFHIRJSON, ch.Payload)
	case content == "full-resource":
		add("Subscription.channel.payload.extension", "security",
			"payload content full-resource is refused: notifications carry no health data; use id-only and fetch the resources with your own token and access basis")
	case content == PayloadIDOnly || content == PayloadEmpty:
		sub.Payload = content
		if ch.Payload == "" {
			add("Subscription.channel.payload", "required", "payload must be %s when the payload content is given", mimeFHIRJSON)
		}
	case content == "":
		add("Subscription.channel.payload.extension", "required",
			"the payload content is required: add the extension %s with valueCode id-only or empty", ExtPayloadContent)
	default:
		add("Subscription.channel.payload.extension", "value", "unknown payload content %q; use id-only or empty", content)
	}

	for i, h := range ch.Header {
		name, _, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		switch {
		case !ok || !headerName.MatchString(name) || strings.ContainsAny(h, "\r\n"):
			add(fmt.Sprintf("Subscription.channel.header[%d]", i), "value", "a header must be \"Name: value\" on one line")
		case forbiddenHeaders[strings.ToLower(name)]:
			add(fmt.Sprintf("Subscription.channel.header[%d]", i), "business-rule", "header %s is set by the server", name)
		}
	}
	sub.Headers = ch.Header

	if len(issues) > 0 {
		return sub, &Error{Issues: issues}
	}
	return sub, nil
}

// parseCriteria accepts exactly "AllergyIntolerance?patient=<id>" or
// "Flag?patient=<id>" (the value may also be "Patient/<id>"). It returns
// a reason when it refuses.
func parseCriteria(c string) (typ, patient, why string) {
	if c == "" {
		return "", "", "criteria is required: AllergyIntolerance?patient=<id> or Flag?patient=<id>"
	}
	typ, query, hasQuery := strings.Cut(c, "?")
	known := false
	for _, t := range WatchedTypes {
		known = known || t == typ
	}
	if !known {
		return "", "", fmt.Sprintf("subscriptions are only offered on critical information (%s), not on %q", strings.Join(WatchedTypes, ", "), typ)
	}
	if !hasQuery || query == "" {
		return "", "", fmt.Sprintf("criteria must name exactly one patient: %s?patient=<id>; subscriptions across patients are refused", typ)
	}
	params := strings.Split(query, "&")
	if len(params) != 1 {
		return "", "", fmt.Sprintf("criteria may have only the patient parameter (%s?patient=<id>), not %q", typ, query)
	}
	name, value, _ := strings.Cut(params[0], "=")
	if name != "patient" {
		return "", "", fmt.Sprintf("criteria must be %s?patient=<id>; parameter %q (modifiers and chains included) is not supported", typ, name)
	}
	v, err := url.QueryUnescape(value)
	if err != nil {
		return "", "", fmt.Sprintf("criteria: the patient value %q is not properly escaped", value)
	}
	v = strings.TrimPrefix(v, "Patient/")
	if strings.Contains(v, ",") {
		return "", "", "criteria must name exactly one patient, not several"
	}
	if !idRe.MatchString(v) {
		return "", "", fmt.Sprintf("criteria: %q is not a patient id", value)
	}
	return typ, v, ""
}

// checkEndpoint returns why endpoint is not acceptable, or "".
func checkEndpoint(endpoint string, dev bool, allow []string) string {
	if endpoint == "" {
		return "endpoint is required"
	}
	u, err := url.Parse(endpoint)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Sprintf("endpoint %q is not an absolute URL", endpoint)
	}
	if u.User != nil {
		return "endpoint must not carry user information; use channel.header for credentials"
	}
	if u.Fragment != "" {
		return "endpoint must not have a fragment"
	}
	host := strings.ToLower(u.Hostname())
	if dev && loopback.Host(host) && (u.Scheme == "http" || u.Scheme == "https") {
		return ""
	}
	if u.Scheme != "https" {
		return fmt.Sprintf("endpoint must use https, not %s", u.Scheme)
	}
	for _, a := range allow {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" {
			continue
		}
		if strings.HasPrefix(a, ".") {
			if strings.HasSuffix(host, a) && len(host) > len(a) {
				return ""
			}
			continue
		}
		if host == a || strings.HasSuffix(host, "."+a) {
			return ""
		}
	}
	return fmt.Sprintf("endpoint host %q is not on the server's allow-list", host)
}

func parseInstant(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// Watches reports whether the subscription is interested in ev.
func (s Subscription) Watches(ev Event, now time.Time) bool {
	if s.Status == StatusOff || (!s.End.IsZero() && !now.Before(s.End)) {
		return false
	}
	return s.ResourceType == ev.ResourceType && s.Patient == ev.Patient
}

// Resource renders the Subscription as R4 JSON with the server state
// (status, error, and this server's counters as extensions): what GET
// serves (StoreState.Served renders it without channel.header, which
// often carries the receiver's credentials).
func (s Subscription) Resource(versionID int64, lastUpdated time.Time) ([]byte, error) {
	return s.render(versionID, lastUpdated, true)
}

// render renders the Subscription; withState adds the delivery state,
// which the stored resource leaves out (it lives in a queue item, so that
// a notification adds no version).
func (s Subscription) render(versionID int64, lastUpdated time.Time, withState bool) ([]byte, error) {
	fs := fhirSubscription{
		ResourceType: "Subscription",
		ID:           s.ID,
		Status:       s.Status,
		Reason:       s.Reason,
		Criteria:     s.Criteria,
		Channel: &fhirChannel{
			Type:     "rest-hook",
			Endpoint: s.Endpoint,
			Payload:  mimeFHIRJSON,
			PayloadX: &element{Extension: []extension{{URL: ExtPayloadContent, ValueCode: s.Payload}}},
			Header:   s.Headers,
		},
	}
	if versionID > 0 {
		fs.Meta = &fhirMeta{VersionID: strconv.FormatInt(versionID, 10), LastUpdated: lastUpdated.UTC().Format(time.RFC3339Nano)}
	}
	if !s.End.IsZero() {
		fs.End = s.End.UTC().Format(time.RFC3339Nano)
	}
	if s.SubscriberHPR != "" {
		fs.Extension = append(fs.Extension, extension{URL: ExtSubscriber, ValueString: s.SubscriberHPR})
	}
	if withState {
		fs.Error = s.Error
		failures := s.Failures
		fs.Extension = append(fs.Extension,
			extension{URL: ExtFailureCount, ValueInteger: &failures},
			extension{URL: ExtEventCount, ValueString: strconv.FormatInt(s.Events, 10)},
		)
	} else if fs.Status == StatusError {
		// The stored status is the client's; error is delivery state.
		fs.Status = StatusActive
	}
	return json.Marshal(fs)
}

// decodeStored reads a Subscription written by Resource. It does not
// re-check what ParseSubscription checked when the client sent it.
func decodeStored(body []byte) (Subscription, error) {
	var fs fhirSubscription
	if err := json.Unmarshal(body, &fs); err != nil {
		return Subscription{}, fmt.Errorf("notify: stored Subscription: %w", err)
	}
	if fs.Channel == nil {
		return Subscription{}, fmt.Errorf("notify: stored Subscription %s has no channel", fs.ID)
	}
	typ, patient, why := parseCriteria(fs.Criteria)
	if why != "" {
		return Subscription{}, fmt.Errorf("notify: stored Subscription %s: %s", fs.ID, why)
	}
	s := Subscription{
		ID: fs.ID, Status: fs.Status, Reason: fs.Reason, Criteria: fs.Criteria,
		ResourceType: typ, Patient: patient, Endpoint: fs.Channel.Endpoint,
		Payload: PayloadEmpty, Headers: fs.Channel.Header, Error: fs.Error,
	}
	if fs.Channel.PayloadX != nil {
		for _, e := range fs.Channel.PayloadX.Extension {
			if e.URL == ExtPayloadContent && (e.ValueCode == PayloadIDOnly || e.ValueCode == PayloadEmpty) {
				s.Payload = e.ValueCode
			}
		}
	}
	if fs.End != "" {
		if t, err := parseInstant(fs.End); err == nil {
			s.End = t
		}
	}
	for _, e := range fs.Extension {
		switch e.URL {
		case ExtFailureCount:
			if e.ValueInteger != nil {
				s.Failures = *e.ValueInteger
			}
		case ExtEventCount:
			n, err := strconv.ParseInt(e.ValueString, 10, 64)
			if err == nil {
				s.Events = n
			}
		case ExtSubscriber:
			s.SubscriberHPR = e.ValueString
		}
	}
	return s, nil
}
