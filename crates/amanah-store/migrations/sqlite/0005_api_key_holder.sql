-- Schema 5: every API key names the person it was issued to (four eyes count people).
ALTER TABLE api_keys ADD COLUMN holder TEXT;
