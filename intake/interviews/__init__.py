"""The interview wizard: readiness check, consent, the person, testimony and incidents, attachments, wellbeing
and referral, review and submit; and the same operations through the API."""
