-- Isso's schema (isso/db/threads.py, comments.py), with a few realistic rows.
CREATE TABLE threads (id INTEGER PRIMARY KEY, uri VARCHAR(256) UNIQUE, title VARCHAR(256));
CREATE TABLE comments (
    tid REFERENCES threads(id), id INTEGER PRIMARY KEY, parent INTEGER,
    created FLOAT NOT NULL, modified FLOAT, mode INTEGER, remote_addr VARCHAR,
    text VARCHAR, author VARCHAR, email VARCHAR, website VARCHAR,
    likes INTEGER DEFAULT 0, dislikes INTEGER DEFAULT 0, voters BLOB NOT NULL,
    notification INTEGER DEFAULT 0);
CREATE TABLE preferences (key VARCHAR PRIMARY KEY, value VARCHAR);
INSERT INTO threads VALUES (1, '/posts/first/', 'First post');
INSERT INTO threads VALUES (2, '/posts/zweiter-beitrag/', 'Zweiter Beitrag');
INSERT INTO comments VALUES (1, 1, NULL, 1546300800.5, NULL, 1, '127.0.0.0',
    'Hello **Markdown** and a [link](https://example.org).', 'Ann', 'ann@example.org',
    'https://ann.example', 3, 1, x'00', 0);
INSERT INTO comments VALUES (1, 2, 1, 1546304400.0, 1546308000.0, 1, '127.0.0.0',
    'A reply, edited later.', 'Bob', NULL, NULL, 0, 0, x'00', 0);
INSERT INTO comments VALUES (1, 3, 2, 1546311600.0, NULL, 1, '127.0.0.0',
    'A reply to the reply.', NULL, NULL, NULL, 0, 0, x'00', 0);
INSERT INTO comments VALUES (2, 4, NULL, 1577836800.0, NULL, 2, '127.0.0.0',
    'Wartet auf Freigabe: äöü ß 🎉', 'Jürgen', 'j@example.de', NULL, 0, 0, x'00', 0);
INSERT INTO comments VALUES (2, 5, NULL, 1577840400.0, NULL, 4, '127.0.0.0',
    '', '[deleted]', NULL, NULL, 0, 0, x'00', 0);
