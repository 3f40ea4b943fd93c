-- Standard SQL answered by KalamDB (its executor, catalog, fast paths and
-- storage) and by a plain DataFusion SessionContext with the same tables
-- and rows; every query's rows must be equal (in order when the query has
-- a top-level ORDER BY, as multisets otherwise). Statements are separated by
-- blank lines.

CREATE TABLE t1 (a INT, b INT, c INT, d INT, e INT)

INSERT INTO t1 VALUES (104, 100, 102, 101, 103), (107, 105, 106, 108, 109), (111, 112, 113, 114, 110), (115, 118, 119, 116, 117), (121, 124, 123, 122, 120), (127, 129, 125, 128, 126), (131, 130, 134, 133, 132), (138, 139, 137, 136, 135), (142, 143, 141, 140, 144), (NULL, 146, 149, 148, 147), (151, NULL, 153, 154, 150), (156, 158, NULL, 157, 159), (164, 161, 163, NULL, 162), (168, 165, 169, 166, NULL)

CREATE TABLE emp (id BIGINT PRIMARY KEY, name VARCHAR, dept VARCHAR, salary DOUBLE, manager BIGINT, hired DATE)

INSERT INTO emp VALUES (1, 'Ada', 'eng', 120000.5, NULL, '2019-03-01'), (2, 'Bo', 'eng', 95000, 1, '2020-07-15'), (3, 'Cy', 'ops', 70000, 1, '2021-01-04'), (4, 'Di', 'ops', NULL, 3, '2022-11-30'), (5, 'Ed', 'sales', 65000.25, 1, NULL), (6, 'Flo', NULL, 50000, 5, '2023-05-05'), (7, 'Gus', 'eng', 95000, 2, '2023-06-01')

CREATE TABLE dept (name VARCHAR, floor INT, budget DECIMAL(12, 2))

INSERT INTO dept VALUES ('eng', 3, 1000000.00), ('ops', 1, 250000.50), ('hr', 2, 90000.00), ('sales', NULL, 400000.75)

CREATE TABLE nums (x BIGINT, y DOUBLE, s VARCHAR, f BOOLEAN)

INSERT INTO nums VALUES (1, 1.5, 'one', true), (2, -2.25, 'two', false), (3, 0.0, 'three', NULL), (-4, 1e10, 'Four', true), (NULL, NULL, NULL, NULL), (0, 3.125, '', false)

-- point reads, by primary key and otherwise

SELECT * FROM emp WHERE id = 3

SELECT name FROM emp WHERE id = 99

SELECT id, name FROM emp WHERE 4 = id

SELECT * FROM emp WHERE id = 2 AND dept = 'eng'

SELECT name FROM emp WHERE id IN (1, 3, 5) ORDER BY name

SELECT a FROM t1 WHERE a = 104

-- projection, expressions, arithmetic

SELECT a + b, a - b, a * 2, a / 3, a % 7 FROM t1 ORDER BY a NULLS FIRST

SELECT a / 0.5, a * 1.5, -a, abs(b - c) FROM t1 ORDER BY a NULLS FIRST

SELECT 7 / 2, 7 % 2, 7.0 / 2, -7 / 2, 2 * 3 + 4 AS p, 2 * (3 + 4) AS q, 10 - 2 - 3

SELECT x, y, x + y, x * y, y / 2 FROM nums ORDER BY x NULLS LAST

SELECT CAST(a AS DOUBLE) / 7, CAST(b AS VARCHAR), CAST('12' AS INT) + 1 FROM t1 WHERE a < 120 ORDER BY a

SELECT round(salary / 12, 2), floor(salary / 1000), ceil(salary / 1000) FROM emp ORDER BY id

SELECT sqrt(16.0), power(2, 10), ln(1.0), exp(0.0), signum(-3), pi() > 3.14

-- CASE, COALESCE, NULLIF, NULL semantics

SELECT a, CASE WHEN a < 120 THEN 'low' WHEN a < 150 THEN 'mid' ELSE 'high' END FROM t1 ORDER BY a NULLS FIRST

SELECT CASE b WHEN 100 THEN 'hundred' WHEN 105 THEN 'one-oh-five' END FROM t1 ORDER BY b NULLS FIRST

SELECT coalesce(a, b, c), nullif(a, 104), a IS NULL, a IS NOT NULL FROM t1 ORDER BY c NULLS FIRST

SELECT NULL = NULL, NULL IS NULL, 1 = NULL, NULL AND false, NULL OR true, NOT (NULL)

SELECT count(*), count(a), count(b), count(DISTINCT dept), sum(salary), avg(salary) FROM t1, (SELECT 1) s, emp WHERE t1.a = 104

SELECT x FROM nums WHERE x > 0 OR x IS NULL ORDER BY x NULLS FIRST

SELECT x FROM nums WHERE NOT (x > 0) ORDER BY x

SELECT f, count(*) FROM nums GROUP BY f ORDER BY f NULLS LAST

-- strings

SELECT upper(name), lower(name), length(name), substr(name, 1, 2), name || '!' FROM emp ORDER BY id

SELECT s, concat(s, '-', x), replace(s, 'o', '0'), trim('  ' || s || '  '), reverse(s) FROM nums ORDER BY x NULLS LAST

SELECT name FROM emp WHERE name LIKE '%o%' ORDER BY name

SELECT name FROM emp WHERE name ILIKE 'a%' OR name NOT LIKE '_d' ORDER BY name

SELECT s FROM nums WHERE s IN ('one', 'Four', 'none') ORDER BY s

SELECT s FROM nums WHERE s BETWEEN 'a' AND 'p' ORDER BY s

SELECT strpos(s, 'o'), lpad(s, 6, '*'), rpad(s, 6, '.'), starts_with(s, 't') FROM nums WHERE s IS NOT NULL ORDER BY s

-- dates

SELECT name, hired, hired + INTERVAL '1 day', extract(year FROM hired), date_part('month', hired) FROM emp ORDER BY id

SELECT name FROM emp WHERE hired >= DATE '2021-01-01' ORDER BY hired

SELECT date_trunc('month', CAST(hired AS TIMESTAMP)) FROM emp WHERE hired IS NOT NULL ORDER BY 1

-- aggregates and grouping

SELECT dept, count(*), sum(salary), min(salary), max(salary), avg(salary) FROM emp GROUP BY dept ORDER BY dept NULLS LAST

SELECT dept, count(*) FROM emp GROUP BY dept HAVING count(*) > 1 ORDER BY dept

SELECT count(DISTINCT salary), count(salary), count(*) FROM emp

SELECT sum(a), avg(b), min(c), max(d), count(e) FROM t1

SELECT a > 130, count(*), sum(b) FROM t1 GROUP BY a > 130 ORDER BY 1 NULLS FIRST

SELECT dept, string_agg(name, ',' ORDER BY name) FROM emp GROUP BY dept ORDER BY dept NULLS FIRST

SELECT max(name), min(hired), bool_and(salary > 60000), bool_or(salary > 100000) FROM emp

SELECT sum(budget), avg(budget), max(budget) FROM dept

-- joins

SELECT e.name, d.floor FROM emp e JOIN dept d ON e.dept = d.name ORDER BY e.name

SELECT e.name, d.name FROM emp e LEFT JOIN dept d ON e.dept = d.name ORDER BY e.name

SELECT e.name, d.name FROM emp e RIGHT JOIN dept d ON e.dept = d.name ORDER BY d.name, e.name

SELECT e.name, d.name FROM emp e FULL OUTER JOIN dept d ON e.dept = d.name ORDER BY e.name NULLS FIRST, d.name

SELECT count(*) FROM emp CROSS JOIN dept

SELECT e.name, m.name AS manager FROM emp e LEFT JOIN emp m ON e.manager = m.id ORDER BY e.id

SELECT d.name, count(e.id) FROM dept d LEFT JOIN emp e ON e.dept = d.name GROUP BY d.name ORDER BY d.name

SELECT t1.a, nums.s FROM t1 JOIN nums ON t1.a - 103 = nums.x ORDER BY t1.a

-- subqueries

SELECT name FROM emp WHERE salary > (SELECT avg(salary) FROM emp) ORDER BY name

SELECT name FROM emp WHERE dept IN (SELECT name FROM dept WHERE floor > 1) ORDER BY name

SELECT name FROM emp e WHERE EXISTS (SELECT 1 FROM emp r WHERE r.manager = e.id) ORDER BY name

SELECT name FROM emp e WHERE NOT EXISTS (SELECT 1 FROM emp r WHERE r.manager = e.id) ORDER BY name

SELECT name, (SELECT count(*) FROM emp r WHERE r.manager = e.id) AS reports FROM emp e ORDER BY id

SELECT avg(c) FROM (SELECT a, c FROM t1 WHERE a > 120) sub

SELECT dept FROM (SELECT dept, count(*) AS n FROM emp GROUP BY dept) g WHERE n >= 2 ORDER BY dept

SELECT name FROM emp WHERE dept NOT IN (SELECT name FROM dept WHERE name IS NOT NULL) ORDER BY name

-- set operations

SELECT dept FROM emp UNION SELECT name FROM dept ORDER BY 1 NULLS FIRST

SELECT dept FROM emp UNION ALL SELECT name FROM dept ORDER BY 1 NULLS FIRST

SELECT name FROM dept INTERSECT SELECT dept FROM emp ORDER BY 1

SELECT name FROM dept EXCEPT SELECT dept FROM emp ORDER BY 1

-- ordering, limits

SELECT name, salary FROM emp ORDER BY salary DESC NULLS LAST, name

SELECT name, salary FROM emp ORDER BY salary ASC NULLS FIRST, name LIMIT 3

SELECT a FROM t1 ORDER BY a DESC LIMIT 4 OFFSET 2

SELECT DISTINCT dept FROM emp ORDER BY dept NULLS LAST

SELECT b, c FROM t1 ORDER BY b + c DESC NULLS LAST, b

-- CTEs and windows

WITH high AS (SELECT * FROM emp WHERE salary >= 90000) SELECT name FROM high ORDER BY name

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) SELECT sum(i) FROM n

SELECT name, dept, rank() OVER (PARTITION BY dept ORDER BY salary DESC NULLS LAST) FROM emp ORDER BY id

SELECT name, row_number() OVER (ORDER BY id), sum(salary) OVER (ORDER BY id) FROM emp ORDER BY id

SELECT name, lag(name) OVER (ORDER BY id), lead(salary, 2) OVER (ORDER BY id) FROM emp ORDER BY id

SELECT dept, salary, avg(salary) OVER (PARTITION BY dept) FROM emp ORDER BY id

-- constants and VALUES

SELECT 1

SELECT 1, 'x', NULL, true, 2.5

SELECT 'a' || 'b', 1 < 2, 3 BETWEEN 1 AND 5, 'b' IN ('a', 'b')

SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(n, s) ORDER BY n

SELECT count(*) FROM (VALUES (1), (2), (NULL)) AS v(n) WHERE n IS NOT NULL

-- data changes read back the same way

INSERT INTO nums VALUES (10, 10.5, 'ten', true)

UPDATE nums SET y = y * 2 WHERE x > 1

DELETE FROM nums WHERE s = 'two'

SELECT x, y, s, f FROM nums ORDER BY x NULLS LAST

UPDATE emp SET salary = 99999 WHERE id = 4

DELETE FROM emp WHERE id = 6

SELECT id, name, salary FROM emp ORDER BY id

SELECT dept, count(*), sum(salary) FROM emp GROUP BY dept ORDER BY dept NULLS FIRST
