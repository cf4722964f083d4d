package signature

// maxKeyVersionLen bounds keyVersion so it stays a safe metrics/log value.
const maxKeyVersionLen = 32

// CheckKeyVersion returns an *Error with ReasonMalformed unless v is a
// keyVersion: 1 to 32 ASCII letters, digits, '.', '_' or '-'.
//
// This is the one keyVersion rule of the module: ParseHeader applies it to
// the keyVersion a caller sends, the configuration to the versions keys are
// registered and replies are signed under, and the CLI to --key-version. A
// version accepted in one place is therefore accepted in all of them, so no
// registered key can be unreachable by a header. The SDKs send small
// integers ("1"); the rule is wider so dated rotation schemes ("2024-05")
// work too.
//
// The message starts with "keyVersion" and does not echo v; callers prefix
// the header or option it came from.
func CheckKeyVersion(v string) error {
	bad := v == "" || len(v) > maxKeyVersionLen
	for i := 0; i < len(v) && !bad; i++ {
		c := v[i]
		bad = !(isAlnum(c) || c == '.' || c == '_' || c == '-')
	}
	if bad {
		return newError(ReasonMalformed, "keyVersion must be 1-32 letters, digits, '.', '_' or '-'")
	}
	return nil
}
