package app

import (
	"embed"

	"fyne.io/fyne/v2/lang"
)

// Every string the user sees goes through lang.L with its English text as
// the key; translations/ has the English and Simplified Chinese (zh_Hans)
// bundles. The language follows the OS. TestTranslationsMatchTheCode
// fails when a key used here has no entry, or an entry is no longer used.
//
//go:embed translations
var translations embed.FS

func loadTranslations() error {
	return lang.AddTranslationsFS(translations, "translations")
}
