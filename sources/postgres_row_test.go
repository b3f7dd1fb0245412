package sources

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

func TestRowJSONKeepsTypesAndDigits(t *testing.T) {
	t.Parallel()
	fields := []pgconn.FieldDescription{
		{Name: "id", DataTypeOID: pgtype.Int8OID},
		{Name: "price", DataTypeOID: pgtype.NumericOID},
		{Name: "ratio", DataTypeOID: pgtype.Float8OID},
		{Name: "ok", DataTypeOID: pgtype.BoolOID},
		{Name: "doc", DataTypeOID: pgtype.JSONBOID},
		{Name: "at", DataTypeOID: pgtype.TimestamptzOID},
		{Name: "gone", DataTypeOID: pgtype.TextOID},
		{Name: "text", DataTypeOID: pgtype.TextOID},
		{Name: "id", DataTypeOID: pgtype.TextOID}, // a repeated name keeps the first
	}
	raw := [][]byte{
		[]byte("9007199254740993"), []byte("12345678901234567890.000000001"), []byte("NaN"), []byte("t"),
		[]byte(`{"a": [1, 2]}`), []byte("2026-12-06 12:00:00+00"), nil, []byte("caf\xe9 \"quoted\""), []byte("x"),
	}
	got := string(rowJSON(fields, raw))
	want := `{"id":9007199254740993,"price":12345678901234567890.000000001,"ratio":"NaN","ok":true,"doc":{"a": [1, 2]},"at":"2026-12-06 12:00:00+00","gone":null,"text":"caf` + "\uFFFD" + ` \"quoted\""}`
	if got != want {
		t.Errorf("rowJSON =\n%s\nwant\n%s", got, want)
	}
}

// Whatever the server sends, the row is a JSON object with every name.
func FuzzRowJSON(f *testing.F) {
	oids := []uint32{pgtype.Int4OID, pgtype.NumericOID, pgtype.BoolOID, pgtype.JSONOID, pgtype.JSONBOID, pgtype.TextOID, pgtype.ByteaOID}
	f.Add("id", uint8(0), []byte("1"), "payload", uint8(4), []byte(`{"n":1}`), false)
	f.Add("n", uint8(1), []byte("1e400"), "n", uint8(3), []byte(`{"n":`), true)
	f.Add("\xff", uint8(2), []byte("yes"), "b", uint8(6), []byte("\\x00ff"), false)
	f.Fuzz(func(t *testing.T, name1 string, oid1 uint8, v1 []byte, name2 string, oid2 uint8, v2 []byte, null2 bool) {
		fields := []pgconn.FieldDescription{
			{Name: name1, DataTypeOID: oids[int(oid1)%len(oids)]},
			{Name: name2, DataTypeOID: oids[int(oid2)%len(oids)]},
		}
		if null2 {
			v2 = nil
		}
		row := rowJSON(fields, [][]byte{v1, v2})
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(row, &obj); err != nil {
			t.Fatalf("rowJSON gave %q: %v", row, err)
		}
		want := 2
		if strings.ToValidUTF8(name1, "\uFFFD") == strings.ToValidUTF8(name2, "\uFFFD") {
			want = 1
		}
		if len(obj) != want {
			t.Fatalf("rowJSON gave %d names, want %d: %s", len(obj), want, row)
		}
		if v := jsonValue(row); v.IsNull() {
			t.Fatalf("msg.row of %s is null", row)
		}
	})
}
