package sources

import (
	"testing"
)

// What a database or log source knows of a message is in msg for its
// mapping: an outbox row, a stream entry's fields, a record's key,
// headers (names as they are), partition and offset.
func TestRecordAttributesInMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		block string
		msg   Message
		want  string // the event's name, id and data
	}{
		{
			name: "outbox row",
			block: `source "postgres" {
  dsn    = "postgres://db/app"
  query  = "SELECT * FROM outbox WHERE id > $1 ORDER BY id LIMIT 10"
  cursor = "id"
  event  = msg.row.topic
  data   = msg.row.payload.n
}`,
			msg:  Message{ID: "5", Record: &Record{Row: []byte(`{"id":5,"topic":"tick","payload":{"n":3}}`)}},
			want: "tick|5|3",
		},
		{
			name: "stream entry",
			block: `source "redis" {
  url    = "redis://cache:6379/0"
  stream = "events"
  event  = msg.fields.kind
  data   = msg.fields.d
}`,
			msg:  Message{ID: "1-1", Record: &Record{Fields: map[string]string{"kind": "k", "d": "x"}}},
			want: "k|1-1|x",
		},
		{
			name: "kafka record",
			block: `source "kafka" {
  brokers = ["k:9092"]
  topic   = "t"
  event   = msg.key == null ? "no key" : msg.key
  data    = "${msg.partition}/${msg.offset} ${msg.headers["traceparent"]}"
}`,
			msg: Message{ID: "2-7", Headers: map[string][]string{"traceparent": {"abc"}},
				Record: &Record{Partition: 2, Offset: 7, Positioned: true}},
			want: "no key|2-7|2/7 abc",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, diags := Decode(parseSource(t, tt.block), testFuncs, RouteInfo{Path: "/r"})
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var m *Mapping
			switch s := spec.(type) {
			case *postgresSource:
				m = &s.Mapping
			case *redisSource:
				m = &s.Mapping
			case *kafkaSource:
				m = &s.Mapping
			}
			ev, err := m.Apply(testFuncs, &tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			id, _ := ev.ID()
			if got := ev.Name() + "|" + id + "|" + ev.Data(); got != tt.want {
				t.Errorf("event %q, want %q", got, tt.want)
			}
		})
	}
}
