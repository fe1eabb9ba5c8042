"""Answer sources: issuer filter → local cache → store → live signing, composed in one place."""
