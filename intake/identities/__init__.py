"""The identity vault: who a person is, sealed under the person's own data key, known elsewhere by a pseudonym."""
