-- Predicates on the primary key (point reads, key lists, ranges, in both
-- directions, with LIMIT), through the fast path and the planned scan:
-- the answers are plain DataFusion's.

CREATE TABLE ki (id BIGINT PRIMARY KEY, room INT, body VARCHAR)

INSERT INTO ki VALUES (-100, 1, 'a'), (-3, 2, 'b'), (-1, 1, 'c'), (0, 2, 'd'), (1, 1, 'e'), (2, 2, 'f'), (7, 1, 'g'), (8, 2, NULL), (50, 1, 'h'), (9000000000, 2, 'i')

SELECT * FROM ki WHERE id = -3

SELECT * FROM ki WHERE id = 9000000000

SELECT body FROM ki WHERE -1 = id

SELECT id FROM ki WHERE id IN (-100, 8, 9, NULL) ORDER BY id

SELECT id FROM ki WHERE id IN (-100, 8, 9) ORDER BY id DESC

SELECT id, body FROM ki WHERE id < 0 ORDER BY id DESC

SELECT id FROM ki WHERE id <= -1 OR id >= 50 ORDER BY id

SELECT id FROM ki WHERE id > -3 AND id < 8 ORDER BY id DESC LIMIT 3

SELECT id FROM ki WHERE id BETWEEN -1 AND 7 ORDER BY id

SELECT id FROM ki WHERE id BETWEEN 7 AND -1

SELECT id FROM ki WHERE id NOT BETWEEN -1 AND 7 ORDER BY id

SELECT id FROM ki WHERE (id = 1 OR id = 2) AND room = 2

SELECT * FROM ki ORDER BY id DESC LIMIT 4

SELECT * FROM ki ORDER BY id LIMIT 4

SELECT * FROM ki ORDER BY id ASC LIMIT 0

SELECT id FROM ki WHERE id > 1 ORDER BY id LIMIT 2

SELECT id FROM ki WHERE room = 1 ORDER BY id DESC LIMIT 2

SELECT id, room FROM ki WHERE body IS NULL OR id < -50 ORDER BY id DESC

SELECT id FROM ki WHERE id > 2.5 ORDER BY id

SELECT id FROM ki WHERE id >= -3 AND id IN (-3, 1, 50) AND id < 50 ORDER BY id

SELECT id FROM ki WHERE id = NULL

SELECT id FROM ki WHERE id > NULL OR id = 7

SELECT count(*) FROM ki WHERE id >= 0

SELECT max(id), min(id) FROM ki WHERE id < 8

SELECT id FROM ki WHERE id < 1 ORDER BY id DESC, body

SELECT id FROM ki WHERE id IN (1, 2, 3) OR id BETWEEN 40 AND 60 ORDER BY id

SELECT id FROM ki WHERE id > 0 ORDER BY id DESC LIMIT 2 OFFSET 1

SELECT id FROM (SELECT id FROM ki ORDER BY id LIMIT 3) ORDER BY id DESC

SELECT a.id, b.id FROM ki a JOIN ki b ON a.id + 1 = b.id WHERE a.id >= 0 ORDER BY a.id DESC

CREATE TABLE ks (id INT PRIMARY KEY, v INT)

INSERT INTO ks VALUES (-2147483648, 1), (-1, 2), (0, 3), (2147483647, 4)

SELECT id FROM ks WHERE id < 9999999999 ORDER BY id DESC

SELECT id FROM ks WHERE id > -9999999999 AND id < 0 ORDER BY id

SELECT v FROM ks WHERE id = 2147483647

SELECT v FROM ks WHERE id = 2147483648

SELECT id FROM ks WHERE id >= -2147483648 ORDER BY id LIMIT 2

CREATE TABLE kt (w VARCHAR PRIMARY KEY, n INT)

INSERT INTO kt VALUES ('b', 1), ('ba', 2), ('bb', 3), ('c', 4), ('a', 5), ('B', 6), ('', 7)

SELECT w FROM kt WHERE w > 'b' ORDER BY w

SELECT w FROM kt WHERE w >= 'b' AND w < 'bb' ORDER BY w DESC

SELECT w FROM kt WHERE w <= 'b' ORDER BY w

SELECT * FROM kt WHERE w IN ('bb', 'zz', '') ORDER BY w

SELECT w, n FROM kt ORDER BY w DESC LIMIT 3

SELECT w FROM kt WHERE w BETWEEN 'a' AND 'b' ORDER BY w DESC

SELECT w FROM kt WHERE w > '' AND w < 'b' ORDER BY w DESC LIMIT 2

-- A primary key of two columns (text, then a signed integer): the key's
-- leading columns pinned to points, then one range, read in either
-- direction; predicates on a later column alone read everything.

CREATE TABLE km (chat VARCHAR, id BIGINT, body VARCHAR, PRIMARY KEY (chat, id))

INSERT INTO km VALUES ('a', -2, 'a-2'), ('a', 1, 'a1'), ('a', 5, 'a5'), ('a', 9, 'a9'), ('b', -7, 'b-7'), ('b', 1, 'b1'), ('b', 3, 'b3'), ('bb', 0, 'bb0'), ('c', 2, 'c2'), ('', 4, 'empty4')

SELECT * FROM km ORDER BY chat, id

SELECT body FROM km WHERE chat = 'a' AND id = 5

SELECT body FROM km WHERE id = 1 AND chat = 'b'

SELECT body FROM km WHERE chat = 'a' AND id = 6

SELECT body FROM km WHERE chat IN ('a', 'b', 'zz') AND id IN (1, -7) ORDER BY chat, id

SELECT id FROM km WHERE chat = 'a' AND id > 1 ORDER BY id

SELECT id FROM km WHERE chat = 'a' AND id >= -2 AND id < 9 ORDER BY id DESC

SELECT id FROM km WHERE chat = 'a' ORDER BY id DESC LIMIT 2

SELECT chat, id FROM km WHERE chat = 'b' AND id BETWEEN -7 AND 1 ORDER BY chat, id

SELECT chat, id FROM km WHERE chat IN ('a', 'b') AND id < 2 ORDER BY chat DESC, id DESC

SELECT chat, id FROM km WHERE chat >= 'b' ORDER BY chat, id

SELECT chat, id FROM km WHERE chat > 'b' AND chat < 'c' ORDER BY chat, id

SELECT chat, id FROM km WHERE chat = 'b' OR id = 9 ORDER BY chat, id

SELECT chat, id FROM km WHERE id = 1 ORDER BY chat

SELECT chat, id FROM km WHERE id > 2 ORDER BY chat, id

SELECT chat, id FROM km ORDER BY chat DESC, id DESC LIMIT 4

SELECT chat, id FROM km ORDER BY chat, id DESC

SELECT chat, id FROM km WHERE chat = 'a' ORDER BY chat, id DESC LIMIT 3

SELECT chat, id, body FROM km WHERE chat = 'a' ORDER BY id, body LIMIT 2

SELECT count(*) FROM km WHERE chat = 'b'

SELECT body FROM km WHERE chat = '' AND id = 4

SELECT body FROM km WHERE chat = NULL AND id = 1
