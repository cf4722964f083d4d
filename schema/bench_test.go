package schema

import (
	"testing"
)

func BenchmarkValidateBase(b *testing.B) {
	v := base(b)
	doc := decode(b, string(readFile(b, "testdata/seed.json")))
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateError measures the translation of a rejected body.
func BenchmarkValidateError(b *testing.B) {
	v := base(b)
	doc := decode(b, `{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{},"amount":{"value":"1","currency":"hkd"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Validate(doc); err == nil {
			b.Fatal("accepted")
		}
	}
}
