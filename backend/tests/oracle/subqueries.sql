-- Subqueries plain DataFusion cannot answer (correlated on a non-equality,
-- correlated EXISTS outside WHERE, IN (SELECT …) outside WHERE, the same
-- subquery twice), answered by KalamDB and by SQLite: the rows must match.
-- Blocks are separated by blank lines; statements that are not queries
-- run on both sides first.

CREATE TABLE t1 (a INT PRIMARY KEY, b INT, c INT)

INSERT INTO t1 VALUES (1, 10, 100), (2, 20, NULL), (3, NULL, 300), (4, 40, 400), (5, 20, 500), (6, -5, 600)

CREATE TABLE t2 (x INT PRIMARY KEY, y INT)

INSERT INTO t2 VALUES (1, 10), (2, NULL), (3, 25), (4, -5)

SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) FROM t1 ORDER BY a

SELECT a, (SELECT count(*) FROM t1 AS x WHERE x.b <= t1.b AND x.a <> t1.a) FROM t1 ORDER BY a

SELECT a, (SELECT sum(x.c) FROM t1 AS x WHERE x.a < t1.a) FROM t1 ORDER BY a

SELECT a, (SELECT max(y) FROM t2 WHERE t2.y < t1.b) FROM t1 ORDER BY a

SELECT a, (SELECT min(x.a) FROM t1 AS x WHERE x.a > t1.a AND x.b > t1.b) FROM t1 ORDER BY a

SELECT a FROM t1 WHERE (SELECT count(*) FROM t1 AS x WHERE x.b > t1.b) >= 2 ORDER BY a

SELECT a, CASE WHEN c > (SELECT avg(c) FROM t1) THEN 'high' ELSE 'low' END FROM t1 ORDER BY a

SELECT a, CASE WHEN (SELECT count(*) FROM t2 WHERE t2.y < t1.b) > 1 THEN 'many' ELSE 'few' END FROM t1 ORDER BY a

SELECT a, (SELECT count(*) FROM t2 WHERE y < t1.b), (SELECT count(*) FROM t2 WHERE y < t1.b) FROM t1 ORDER BY a

SELECT a, (SELECT max(b) FROM t1), (SELECT max(b) FROM t1) FROM t1 ORDER BY a

SELECT a, EXISTS (SELECT 1 FROM t2 WHERE t2.y < t1.b) FROM t1 ORDER BY a

SELECT a, NOT EXISTS (SELECT 1 FROM t2 WHERE t2.y > t1.b) FROM t1 ORDER BY a

SELECT a, 1 IN (SELECT x FROM t2) FROM t1 ORDER BY a

SELECT a, b IN (SELECT y FROM t2) FROM t1 ORDER BY a

SELECT a, b NOT IN (SELECT y FROM t2) FROM t1 ORDER BY a

SELECT a, NULL NOT IN (SELECT x FROM t2) FROM t1 ORDER BY a

SELECT a, b IN (SELECT x.b FROM t1 AS x, t2 WHERE x.b = t2.y) FROM t1 ORDER BY a

SELECT a, b IN (SELECT y FROM t2 WHERE y > 1000) FROM t1 ORDER BY a

SELECT a FROM t1 WHERE b IN (SELECT y FROM t2) OR (SELECT count(*) FROM t2 WHERE t2.x < t1.a) > 3 ORDER BY a

SELECT below, count(*) FROM (SELECT (SELECT count(*) FROM t1 AS x WHERE x.b < t1.b) AS below FROM t1) GROUP BY below ORDER BY below
