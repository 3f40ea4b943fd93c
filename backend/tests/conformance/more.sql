-- More standard SQL: typing, NULL ordering, keyless tables, mixed joins,
-- tables with a primary key read through every path.

CREATE TABLE kv (k VARCHAR PRIMARY KEY, v BIGINT, w DOUBLE)

INSERT INTO kv VALUES ('a', 1, 0.5), ('b', 2, NULL), ('c', NULL, 2.5), ('d', 4, -1.0), ('e', 5, 1e-3)

CREATE TABLE seq (n INT)

INSERT INTO seq VALUES (1), (2), (2), (3), (NULL), (5), (8), (13)

SELECT * FROM kv WHERE k = 'c'

SELECT v FROM kv WHERE k = 'zz'

SELECT k, v * w FROM kv ORDER BY k

SELECT k FROM kv WHERE v > 1 AND w IS NOT NULL ORDER BY k

SELECT n, count(*) FROM seq GROUP BY n ORDER BY n NULLS FIRST

SELECT DISTINCT n FROM seq ORDER BY n DESC NULLS LAST

SELECT sum(n), avg(n), count(n), count(*), min(n), max(n) FROM seq

SELECT n FROM seq WHERE n IN (SELECT v FROM kv) ORDER BY n

SELECT n, v FROM seq LEFT JOIN kv ON seq.n = kv.v ORDER BY n NULLS FIRST, v

SELECT a.n, b.n FROM seq a JOIN seq b ON a.n + 1 = b.n ORDER BY a.n, b.n

SELECT n, n % 3, CASE n % 2 WHEN 0 THEN 'even' ELSE 'odd' END FROM seq ORDER BY n NULLS LAST

SELECT n FROM seq ORDER BY n LIMIT 3

SELECT count(*) FILTER (WHERE n > 2), sum(n) FILTER (WHERE n < 5) FROM seq

SELECT greatest(1, 5, 3), least(2, -1, 4), coalesce(NULL, NULL, 7)

SELECT CAST(1.9 AS INT), CAST(-1.9 AS INT), CAST('3.5' AS DOUBLE), CAST(10 AS VARCHAR) || 'x'

SELECT 9223372036854775807, -9223372036854775807 - 1, 1e308 * 10 > 0

SELECT k, rank() OVER (ORDER BY w DESC NULLS LAST) FROM kv ORDER BY k

SELECT k, first_value(k) OVER (ORDER BY v NULLS LAST), count(*) OVER () FROM kv ORDER BY k

SELECT array_length([1, 2, 3], 1), [1, 2, 3][2], make_array(1, 2)

SELECT regexp_like('abc123', '[0-9]+'), regexp_replace('a-b-c', '-', '+', 'g'), split_part('a,b,c', ',', 2)

SELECT to_hex(255), ascii('A'), chr(66), initcap('hello world'), left('kalam', 3), right('kalam', 2)

SELECT md5('kalam'), sha256('kalam') IS NOT NULL

INSERT INTO kv VALUES ('f', 6, 6.5)

UPDATE kv SET v = v + 100 WHERE w > 1

DELETE FROM kv WHERE v IS NULL

SELECT k, v, w FROM kv ORDER BY k

UPDATE seq SET n = n * 10 WHERE n > 4

DELETE FROM seq WHERE n = 2

SELECT n FROM seq ORDER BY n NULLS FIRST
