package notify

import (
	"encoding/json"
	"strconv"
)

// Event says that a resource of a watched type changed in a patient's
// record. It carries no content: the dispatcher never reads the resource.
type Event struct {
	ResourceType string // AllergyIntolerance or Flag
	ID           string // the resource's FHIR id
	Patient      string // the FHIR id of the patient whose record changed
	// Seq is the event's number in the subscription's stream
	// (events-since-subscription-start), assigned when the event is queued
	// for a subscription; callers of Dispatcher.Publish leave it zero.
	Seq int64
}

type reference struct {
	Reference string `json:"reference"`
}

type param struct {
	Name           string     `json:"name"`
	ValueReference *reference `json:"valueReference,omitempty"`
	ValueCode      string     `json:"valueCode,omitempty"`
	ValueString    string     `json:"valueString,omitempty"`
	Part           []param    `json:"part,omitempty"`
}

type parameters struct {
	ResourceType string    `json:"resourceType"`
	Meta         *profiles `json:"meta,omitempty"`
	Parameter    []param   `json:"parameter"`
}

type profiles struct {
	Profile []string `json:"profile"`
}

type entryRequest struct {
	Method string `json:"method"`
	URL    string `json:"url"`
}

type entryResponse struct {
	Status string `json:"status"`
}

type entry struct {
	FullURL  string         `json:"fullUrl,omitempty"`
	Resource *parameters    `json:"resource,omitempty"`
	Request  *entryRequest  `json:"request,omitempty"`
	Response *entryResponse `json:"response,omitempty"`
}

type bundle struct {
	ResourceType string  `json:"resourceType"`
	Type         string  `json:"type"`
	Entry        []entry `json:"entry"`
}

// Notification renders the notification Bundle for events: an R4 backport
// notification (Bundle type history) whose first entry is the
// SubscriptionStatus as Parameters (backport-subscription-status-r4).
//
// It carries no health data. With id-only each event becomes a
// notification-event naming its focus (the changed resource's reference)
// and, as additional-context, the patient reference, plus an entry for the
// resource with no resource content; with empty there is no
// notification-event and no entry beyond the status, only the count.
func Notification(sub Subscription, events []Event) []byte {
	base := sub.ServerBase
	ref := func(rel string) string {
		if base == "" {
			return rel
		}
		return base + "/" + rel
	}
	var count int64 = sub.Events
	for _, ev := range events {
		count = max(count, ev.Seq)
	}
	status := sub.Status
	if status == "" || status == StatusRequested {
		status = StatusActive
	}
	subRef := "Subscription/" + sub.ID
	ps := []param{
		{Name: "subscription", ValueReference: &reference{Reference: ref(subRef)}},
		{Name: "status", ValueCode: status},
		{Name: "type", ValueCode: "event-notification"},
		{Name: "events-since-subscription-start", ValueString: strconv.FormatInt(count, 10)},
	}
	var focus []entry
	if sub.Payload == PayloadIDOnly {
		for _, ev := range events {
			rel := ev.ResourceType + "/" + ev.ID
			ps = append(ps, param{Name: "notification-event", Part: []param{
				{Name: "event-number", ValueString: strconv.FormatInt(ev.Seq, 10)},
				{Name: "focus", ValueReference: &reference{Reference: ref(rel)}},
				{Name: "additional-context", ValueReference: &reference{Reference: ref("Patient/" + ev.Patient)}},
			}})
			e := entry{Request: &entryRequest{Method: "GET", URL: rel}, Response: &entryResponse{Status: "200"}}
			if base != "" {
				e.FullURL = ref(rel)
			}
			focus = append(focus, e)
		}
	}
	first := entry{
		Resource: &parameters{
			ResourceType: "Parameters",
			Meta:         &profiles{Profile: []string{statusProfile}},
			Parameter:    ps,
		},
		Request:  &entryRequest{Method: "GET", URL: subRef + "/$status"},
		Response: &entryResponse{Status: "200"},
	}
	b := bundle{ResourceType: "Bundle", Type: "history", Entry: append([]entry{first}, focus...)}
	out, err := json.Marshal(b)
	if err != nil {
		// Only strings and fixed structures: cannot fail.
		panic("notify: marshal notification: " + err.Error())
	}
	return out
}
