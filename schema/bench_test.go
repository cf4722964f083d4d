package schema

import "testing"

func BenchmarkDecode(b *testing.B) {
	raw := readFile(b, "testdata/seed.json")
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateBase(b *testing.B) {
	v := newValidator(b)
	doc, err := Decode(readFile(b, "testdata/seed.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.ValidateBase(doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateGiftCard(b *testing.B) {
	v := newValidator(b)
	doc, err := Decode(readFile(b, "testdata/seed.json"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.ValidateScenario(GiftCard, doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateError measures the translation of a rejected body.
func BenchmarkValidateError(b *testing.B) {
	v := newValidator(b)
	doc, err := Decode([]byte(`{"requestId":"r","merchantBizNo":"m","orderStatus":"S","userId":"u","extInfo":{},"amount":{"value":"1","currency":"hkd"}}`))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.ValidateBase(doc); err == nil {
			b.Fatal("accepted")
		}
	}
}
