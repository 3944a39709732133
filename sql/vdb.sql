-- vdb: the vector type and its SQL surface.
--
-- Names, signatures, casts and operators follow pgvector's so that client
-- libraries and ORMs written for pgvector work unchanged. The type's and
-- the operators' functions are IMMUTABLE, STRICT and PARALLEL SAFE; the
-- index's maintenance and search functions say what they are one by one
-- (vhnsw_merge writes, vhnsw_search runs queries). Functions written in
-- SQL or PL/pgSQL pin search_path to pg_catalog, pg_temp and name vdb's
-- own objects with their schema, so that nothing planted in a schema on
-- the caller's path runs in their place. The C symbols are defined in src/.

-- type --------------------------------------------------------------------

CREATE TYPE vector;

CREATE FUNCTION vector_in(cstring, oid, integer) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_out(vector) RETURNS cstring
    AS 'MODULE_PATHNAME', 'vdb_vector_out' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_typmod_in(cstring[]) RETURNS integer
    AS 'MODULE_PATHNAME', 'vdb_vector_typmod_in' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_recv(internal, oid, integer) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_recv' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_send(vector) RETURNS bytea
    AS 'MODULE_PATHNAME', 'vdb_vector_send' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE vector (
    INPUT     = vector_in,
    OUTPUT    = vector_out,
    TYPMOD_IN = vector_typmod_in,
    RECEIVE   = vector_recv,
    SEND      = vector_send,
    STORAGE   = external
);
COMMENT ON TYPE vector IS 'single-precision vector';

-- functions ---------------------------------------------------------------

-- Prices a distance by its dimensions and the TOAST fetch of a stored
-- vector, so that the planner compares a sequential scan with an index
-- scan on what each really costs.
CREATE FUNCTION vdb_distance_support(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_distance_support' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE FUNCTION l2_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
COMMENT ON FUNCTION l2_distance(vector, vector) IS 'Euclidean distance';

CREATE FUNCTION inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
COMMENT ON FUNCTION inner_product(vector, vector) IS 'inner product';

CREATE FUNCTION cosine_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
COMMENT ON FUNCTION cosine_distance(vector, vector) IS 'cosine distance (NaN if either vector is zero)';

CREATE FUNCTION l1_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
COMMENT ON FUNCTION l1_distance(vector, vector) IS 'taxicab distance';

CREATE FUNCTION poincare_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_poincare_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION poincare_distance(vector, vector) IS 'hyperbolic distance in the Poincare ball (points strictly inside the unit ball)';

CREATE FUNCTION vector_dims(vector) RETURNS integer
    AS 'MODULE_PATHNAME', 'vdb_vector_dims' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_dims(vector) IS 'number of dimensions';

CREATE FUNCTION vector_norm(vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_vector_norm' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_norm(vector) IS 'Euclidean norm';

CREATE FUNCTION l2_normalize(vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_l2_normalize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_normalize(vector) IS 'normalize with Euclidean norm (a zero vector stays zero)';

CREATE FUNCTION binary_quantize(vector) RETURNS bit
    AS 'MODULE_PATHNAME', 'vdb_binary_quantize' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION binary_quantize(vector) IS 'binary quantize (1 for each positive element)';

CREATE FUNCTION subvector(vector, integer, integer) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_subvector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION subvector(vector, integer, integer) IS 'subvector (1-based start, count)';

-- operator implementations ------------------------------------------------

CREATE FUNCTION vector_add(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_add' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_sub(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_sub' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_mul(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_mul' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_concat(vector, vector) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_concat' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_lt(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_lt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_le(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_le' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_eq(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_eq' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_ne(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_ne' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_ge(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_ge' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_gt(vector, vector) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_vector_gt' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_cmp(vector, vector) RETURNS integer
    AS 'MODULE_PATHNAME', 'vdb_vector_cmp' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_l2_squared_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
CREATE FUNCTION vector_negative_inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE
    SUPPORT vdb_distance_support;
CREATE FUNCTION vector_spherical_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_spherical_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vector_spherical_distance(vector, vector) IS 'spherical distance of unit vectors (angle / pi)';

-- aggregates --------------------------------------------------------------

CREATE FUNCTION vector_accum(double precision[], vector) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vdb_vector_accum' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_combine(double precision[], double precision[]) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vdb_vector_combine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_avg(double precision[]) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_avg' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE AGGREGATE avg(vector) (
    SFUNC = vector_accum,
    STYPE = double precision[],
    FINALFUNC = vector_avg,
    COMBINEFUNC = vector_combine,
    INITCOND = '{0}',
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE avg(vector) IS 'element-wise mean of the input vectors';

CREATE AGGREGATE sum(vector) (
    SFUNC = vector_add,
    STYPE = vector,
    COMBINEFUNC = vector_add,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE sum(vector) IS 'element-wise sum of the input vectors';

-- casts -------------------------------------------------------------------

CREATE FUNCTION vector(vector, integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_vector_typmod_cast' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(integer[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_array_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(real[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_array_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(double precision[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_array_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_vector(numeric[], integer, boolean) RETURNS vector
    AS 'MODULE_PATHNAME', 'vdb_array_to_vector' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_float4(vector, integer, boolean) RETURNS real[]
    AS 'MODULE_PATHNAME', 'vdb_vector_to_float4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_float8(vector, integer, boolean) RETURNS double precision[]
    AS 'MODULE_PATHNAME', 'vdb_vector_to_float8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_int4(vector, integer, boolean) RETURNS integer[]
    AS 'MODULE_PATHNAME', 'vdb_vector_to_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_to_numeric(vector, integer, boolean) RETURNS numeric[]
    AS 'MODULE_PATHNAME', 'vdb_vector_to_numeric' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE CAST (vector AS vector) WITH FUNCTION vector(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (vector AS real[]) WITH FUNCTION vector_to_float4(vector, integer, boolean) AS IMPLICIT;
CREATE CAST (vector AS double precision[]) WITH FUNCTION vector_to_float8(vector, integer, boolean);
CREATE CAST (vector AS integer[]) WITH FUNCTION vector_to_int4(vector, integer, boolean);
CREATE CAST (vector AS numeric[]) WITH FUNCTION vector_to_numeric(vector, integer, boolean);
CREATE CAST (integer[] AS vector) WITH FUNCTION array_to_vector(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS vector) WITH FUNCTION array_to_vector(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS vector) WITH FUNCTION array_to_vector(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS vector) WITH FUNCTION array_to_vector(numeric[], integer, boolean) AS ASSIGNMENT;

-- operators ---------------------------------------------------------------

CREATE OPERATOR <-> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l2_distance, COMMUTATOR = '<->'
);
COMMENT ON OPERATOR <-> (vector, vector) IS 'Euclidean distance';

CREATE OPERATOR <#> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_negative_inner_product, COMMUTATOR = '<#>'
);
COMMENT ON OPERATOR <#> (vector, vector) IS 'negative inner product';

CREATE OPERATOR <=> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = cosine_distance, COMMUTATOR = '<=>'
);
COMMENT ON OPERATOR <=> (vector, vector) IS 'cosine distance';

CREATE OPERATOR <+> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = l1_distance, COMMUTATOR = '<+>'
);
COMMENT ON OPERATOR <+> (vector, vector) IS 'taxicab distance';

CREATE OPERATOR + (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_add, COMMUTATOR = +
);
CREATE OPERATOR - (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_sub
);
CREATE OPERATOR * (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_mul, COMMUTATOR = *
);
CREATE OPERATOR || (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_concat
);

CREATE OPERATOR < (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_lt,
    COMMUTATOR = >, NEGATOR = >=, RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_le,
    COMMUTATOR = >=, NEGATOR = >, RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel
);
CREATE OPERATOR <> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_ge,
    COMMUTATOR = <=, NEGATOR = <, RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = vector_gt,
    COMMUTATOR = <, NEGATOR = <=, RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);

-- btree operator class: ORDER BY v, DISTINCT, GROUP BY v, UNIQUE ----------

CREATE OPERATOR CLASS vector_ops
    DEFAULT FOR TYPE vector USING btree AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    FUNCTION 1 vector_cmp(vector, vector);

-- vhnsw index ---------------------------------------------------------------

CREATE OPERATOR <@> (
    LEFTARG = vector, RIGHTARG = vector, PROCEDURE = poincare_distance, COMMUTATOR = '<@>'
);
COMMENT ON OPERATOR <@> (vector, vector) IS 'hyperbolic (Poincare ball) distance';

-- Distance ranges: `WHERE embedding <<->> sphere(q, r)` is true when
-- `embedding <-> q <= r`; one operator per distance operator. A vhnsw
-- index of the matching operator class serves it as an index condition,
-- with or without ORDER BY.
CREATE TYPE sphere AS (center vector, radius double precision);
COMMENT ON TYPE sphere IS 'a center and a radius, for distance-range conditions such as embedding <<->> sphere(q, 0.5)';

CREATE FUNCTION sphere(center vector, radius double precision) RETURNS sphere
    AS 'SELECT ROW(center, radius)::@extschema@.sphere' LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION sphere(vector, double precision) IS 'the sphere of a distance-range condition';

CREATE FUNCTION vector_l2_within(vector, sphere) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_l2_within' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_ip_within(vector, sphere) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_ip_within' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_cosine_within(vector, sphere) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_cosine_within' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_l1_within(vector, sphere) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_l1_within' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_poincare_within(vector, sphere) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_poincare_within' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- contsel: a range is expected to hold few rows (0.1 %).
CREATE OPERATOR <<->> (
    LEFTARG = vector, RIGHTARG = sphere, PROCEDURE = vector_l2_within,
    RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<->> (vector, sphere) IS 'within the sphere by Euclidean distance (<->)';
CREATE OPERATOR <<#>> (
    LEFTARG = vector, RIGHTARG = sphere, PROCEDURE = vector_ip_within,
    RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<#>> (vector, sphere) IS 'negative inner product (<#>) at most the radius';
CREATE OPERATOR <<=>> (
    LEFTARG = vector, RIGHTARG = sphere, PROCEDURE = vector_cosine_within,
    RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<=>> (vector, sphere) IS 'within the sphere by cosine distance (<=>)';
CREATE OPERATOR <<+>> (
    LEFTARG = vector, RIGHTARG = sphere, PROCEDURE = vector_l1_within,
    RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<+>> (vector, sphere) IS 'within the sphere by taxicab distance (<+>)';
CREATE OPERATOR <<@>> (
    LEFTARG = vector, RIGHTARG = sphere, PROCEDURE = vector_poincare_within,
    RESTRICT = contsel, JOIN = contjoinsel
);
COMMENT ON OPERATOR <<@>> (vector, sphere) IS 'within the sphere by Poincare distance (<@>)';

-- The search hint: `WHERE embedding <^> 200` is always true, and a vhnsw
-- scan that has it as an index condition searches with ef_search 200. It
-- travels in the SQL, so it reaches shards through postgres_fdw.
CREATE FUNCTION vhnsw_ef_search_hint(vector, integer) RETURNS boolean
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_ef_search_hint' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vhnsw_ef_search_hint(vector, integer) IS 'true; as operator <^>, sets ef_search (1-1000) for a vhnsw scan of the vector column';

CREATE FUNCTION vhnsw_hint_selectivity(internal, oid, internal, integer) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_hint_selectivity' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR <^> (
    LEFTARG = vector, RIGHTARG = integer, PROCEDURE = vhnsw_ef_search_hint,
    RESTRICT = vhnsw_hint_selectivity
);
COMMENT ON OPERATOR <^> (vector, integer) IS 'search hint: always true; a vhnsw scan of the left column uses the right side as ef_search';

CREATE FUNCTION vhnsw_handler(internal) RETURNS index_am_handler
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_handler' LANGUAGE C;

CREATE ACCESS METHOD vhnsw TYPE INDEX HANDLER vhnsw_handler;
COMMENT ON ACCESS METHOD vhnsw IS 'HNSW index for approximate nearest-neighbour search';

CREATE FUNCTION vhnsw_support_l2(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_l2' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_support_ip(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_ip' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_support_cosine(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_cosine' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_support_l1(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_l1' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_support_poincare(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_poincare' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR CLASS vector_l2_ops FOR TYPE vector USING vhnsw AS
    OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
    OPERATOR 2 <^> (vector, integer),
    OPERATOR 3 <<->> (vector, sphere),
    FUNCTION 1 vhnsw_support_l2(internal);

CREATE OPERATOR CLASS vector_ip_ops FOR TYPE vector USING vhnsw AS
    OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
    OPERATOR 2 <^> (vector, integer),
    OPERATOR 3 <<#>> (vector, sphere),
    FUNCTION 1 vhnsw_support_ip(internal);

CREATE OPERATOR CLASS vector_cosine_ops FOR TYPE vector USING vhnsw AS
    OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
    OPERATOR 2 <^> (vector, integer),
    OPERATOR 3 <<=>> (vector, sphere),
    FUNCTION 1 vhnsw_support_cosine(internal);

CREATE OPERATOR CLASS vector_l1_ops FOR TYPE vector USING vhnsw AS
    OPERATOR 1 <+> (vector, vector) FOR ORDER BY float_ops,
    OPERATOR 2 <^> (vector, integer),
    OPERATOR 3 <<+>> (vector, sphere),
    FUNCTION 1 vhnsw_support_l1(internal);

CREATE OPERATOR CLASS vector_poincare_ops FOR TYPE vector USING vhnsw AS
    OPERATOR 1 <@> (vector, vector) FOR ORDER BY float_ops,
    OPERATOR 2 <^> (vector, integer),
    OPERATOR 3 <<@>> (vector, sphere),
    FUNCTION 1 vhnsw_support_poincare(internal);

-- Filter columns of composite indexes: USING vhnsw (embedding vector_l2_ops,
-- tenant_id, labels). Strategies are B-tree's 1-5, then && (6) and @> (7);
-- the integer family holds the cross-type comparisons, so `int8_col = 7`
-- and `int2_col = ANY($1::int4[])` are index conditions too.
-- `value <@ array` is `value = ANY(array)` as an operator: PostgreSQL plans
-- IN and = ANY on an index column after the first only for unordered scans,
-- so a composite index checks lists given this way. It also folds `b = true`
-- into `b`, which only B-tree and hash indexes match: `b <@ '{t}'` is that
-- condition for a composite index.
CREATE FUNCTION in_array(int2, int2[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_int2' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = int2, RIGHTARG = int2[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION in_array(int4, int4[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_int4' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = int4, RIGHTARG = int4[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION in_array(int8, int8[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_int8' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = int8, RIGHTARG = int8[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION in_array(bool, bool[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_bool' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = bool, RIGHTARG = bool[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION in_array(text, text[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = text, RIGHTARG = text[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);
CREATE FUNCTION in_array(uuid, uuid[]) RETURNS bool
    AS 'MODULE_PATHNAME', 'vdb_in_array_uuid' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE OPERATOR <@ (LEFTARG = uuid, RIGHTARG = uuid[], FUNCTION = in_array, RESTRICT = eqsel, JOIN = eqjoinsel);

CREATE OPERATOR FAMILY integer_ops USING vhnsw;

CREATE OPERATOR CLASS int2_ops DEFAULT FOR TYPE int2 USING vhnsw FAMILY integer_ops AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    OPERATOR 8 <@ (int2, int2[]);

CREATE OPERATOR CLASS int4_ops DEFAULT FOR TYPE int4 USING vhnsw FAMILY integer_ops AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    OPERATOR 8 <@ (int4, int4[]);

CREATE OPERATOR CLASS int8_ops DEFAULT FOR TYPE int8 USING vhnsw FAMILY integer_ops AS
    OPERATOR 1 <,
    OPERATOR 2 <=,
    OPERATOR 3 =,
    OPERATOR 4 >=,
    OPERATOR 5 >,
    OPERATOR 8 <@ (int8, int8[]);

ALTER OPERATOR FAMILY integer_ops USING vhnsw ADD
    OPERATOR 1 < (int2, int4),
    OPERATOR 2 <= (int2, int4),
    OPERATOR 3 = (int2, int4),
    OPERATOR 4 >= (int2, int4),
    OPERATOR 5 > (int2, int4),
    OPERATOR 1 < (int2, int8),
    OPERATOR 2 <= (int2, int8),
    OPERATOR 3 = (int2, int8),
    OPERATOR 4 >= (int2, int8),
    OPERATOR 5 > (int2, int8),
    OPERATOR 1 < (int4, int2),
    OPERATOR 2 <= (int4, int2),
    OPERATOR 3 = (int4, int2),
    OPERATOR 4 >= (int4, int2),
    OPERATOR 5 > (int4, int2),
    OPERATOR 1 < (int4, int8),
    OPERATOR 2 <= (int4, int8),
    OPERATOR 3 = (int4, int8),
    OPERATOR 4 >= (int4, int8),
    OPERATOR 5 > (int4, int8),
    OPERATOR 1 < (int8, int2),
    OPERATOR 2 <= (int8, int2),
    OPERATOR 3 = (int8, int2),
    OPERATOR 4 >= (int8, int2),
    OPERATOR 5 > (int8, int2),
    OPERATOR 1 < (int8, int4),
    OPERATOR 2 <= (int8, int4),
    OPERATOR 3 = (int8, int4),
    OPERATOR 4 >= (int8, int4),
    OPERATOR 5 > (int8, int4);

CREATE OPERATOR CLASS bool_ops DEFAULT FOR TYPE bool USING vhnsw AS
    OPERATOR 3 =,
    OPERATOR 8 <@ (bool, bool[]);

CREATE OPERATOR CLASS text_ops DEFAULT FOR TYPE text USING vhnsw AS
    OPERATOR 3 =,
    OPERATOR 8 <@ (text, text[]);

CREATE OPERATOR CLASS uuid_ops DEFAULT FOR TYPE uuid USING vhnsw AS
    OPERATOR 3 =,
    OPERATOR 8 <@ (uuid, uuid[]);

CREATE OPERATOR CLASS int4_array_ops DEFAULT FOR TYPE int4[] USING vhnsw AS
    OPERATOR 6 && (anyarray, anyarray),
    OPERATOR 7 @> (anyarray, anyarray);

CREATE OPERATOR CLASS int8_array_ops DEFAULT FOR TYPE int8[] USING vhnsw AS
    OPERATOR 6 && (anyarray, anyarray),
    OPERATOR 7 @> (anyarray, anyarray);

CREATE OPERATOR CLASS text_array_ops DEFAULT FOR TYPE text[] USING vhnsw AS
    OPERATOR 6 && (anyarray, anyarray),
    OPERATOR 7 @> (anyarray, anyarray);

-- Maintenance functions. The C functions act on one index's own storage;
-- the functions users call (vhnsw_check, vhnsw_stats, vhnsw_merge) also
-- take a partitioned index (every leaf partition's index) and, with Citus,
-- the index of a distributed table, whose coordinator copy is an empty
-- shell: they run on every shard placement through Citus's
-- master_run_on_worker and add up the answers.
CREATE FUNCTION vhnsw_check_one(regclass) RETURNS text
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_check' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vhnsw_check_one(regclass) IS 'problems of one vhnsw index''s own storage (what vhnsw_check runs on each partition or shard)';

CREATE FUNCTION vhnsw_stats_text(regclass) RETURNS text
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_stats' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vhnsw_stats_text(regclass) IS 'state of one vhnsw index''s own storage, as JSON text (what vhnsw_stats runs on each partition or shard)';

CREATE FUNCTION vhnsw_merge_one(regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_merge' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION vhnsw_merge_one(regclass) IS 'merges every pending entry of one vhnsw index''s own storage (what vhnsw_merge runs on each partition or shard)';

-- Refuses what the C functions would refuse, for the cases that never
-- reach them (a partitioned index without partitions, a shell).
CREATE FUNCTION vhnsw_require(index regclass, owner boolean, function text) RETURNS void
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tab oid;
    am name;
    -- Names as the C functions give them: unqualified.
    index_name name := (SELECT relname FROM pg_class WHERE oid = index);
    table_name name;
BEGIN
    SELECT i.indrelid, a.amname, t.relname INTO tab, am, table_name
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
      JOIN pg_class t ON t.oid = i.indrelid
     WHERE i.indexrelid = index;
    IF tab IS NULL THEN
        RAISE EXCEPTION '"%" is not an index', index_name USING ERRCODE = '42809';
    END IF;
    IF am <> 'vhnsw' THEN
        RAISE EXCEPTION '"%" is not a vhnsw index', index_name USING ERRCODE = '22023';
    END IF;
    IF owner AND NOT pg_has_role((SELECT relowner FROM pg_class WHERE oid = tab), 'USAGE') THEN
        RAISE EXCEPTION 'must be owner of table %', table_name USING ERRCODE = '42501',
            DETAIL = format('%s needs it on the index''s table.', function);
    END IF;
    IF owner AND NOT (SELECT indisvalid FROM pg_index WHERE indexrelid = index) THEN
        RAISE EXCEPTION 'index "%" is not valid yet', index_name USING ERRCODE = '55000',
            DETAIL = 'It is being built concurrently, or such a build failed, or (partitioned) some partitions have no index attached: REINDEX it, or ATTACH PARTITION their indexes.';
    END IF;
    IF NOT owner AND NOT has_table_privilege(tab, 'SELECT') THEN
        RAISE EXCEPTION 'permission denied for table %', table_name USING ERRCODE = '42501',
            DETAIL = format('%s needs it on the index''s table.', function);
    END IF;
END
$$;

-- Whether `index` is partitioned. pg_partition_tree reads the catalog
-- through its caches: a query on pg_class may not see a relation, since
-- Citus hides shards from it in some sessions on a worker.
CREATE FUNCTION vhnsw_partitioned(index regclass) RETURNS boolean
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM pg_partition_tree(index) t WHERE t.relid = index AND NOT t.isleaf)
$$;

-- The leaf indexes of a partitioned index, by name.
CREATE FUNCTION vhnsw_leaf_indexes(index regclass) RETURNS SETOF regclass
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.relid::regclass FROM pg_partition_tree(index) t
     WHERE t.isleaf ORDER BY t.relid::regclass::text
$$;

-- With Citus, where the index of a distributed (or reference, or Citus
-- local) table really is: one row per active shard placement, `first` on
-- one placement of each shard. No rows for any other index, or without
-- Citus.
CREATE FUNCTION vhnsw_placements(index regclass, OUT shard_index text, OUT shardid bigint,
                                 OUT nodename text, OUT nodeport integer, OUT first boolean)
RETURNS SETOF record LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NULL
       OR NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    -- Dynamic: Citus's catalogs do not exist where Citus is not installed.
    RETURN QUERY EXECUTE $q$
        SELECT shard_name($1, s.shardid, false), s.shardid, p.nodename::text, p.nodeport::integer,
               row_number() OVER (PARTITION BY s.shardid ORDER BY p.nodename, p.nodeport) = 1
          FROM pg_dist_shard s JOIN pg_dist_shard_placement p ON p.shardid = s.shardid
         WHERE s.logicalrelid = (SELECT indrelid FROM pg_index WHERE indexrelid = $1)
           AND p.shardstate = 1
         ORDER BY s.shardid, p.nodename, p.nodeport $q$ USING index;
END
$$;

-- Runs `call` (vdb's vhnsw_check, vhnsw_stats or vhnsw_merge) on the
-- shard indexes of `index`, on every placement or one per shard: one
-- command per node (Citus's master_run_on_worker, the nodes at the same
-- time), running that node's shards one after another, so that a table of
-- many shards takes one connection per node. One row per placement; a
-- node that failed gives its error for each of its placements. Each
-- command runs in a connection and transaction of its own.
CREATE FUNCTION vhnsw_on_placements(index regclass, call text, every_placement boolean,
                                    OUT shard_index text, OUT node text, OUT success boolean,
                                    OUT result text, OUT first boolean)
RETURNS SETOF record LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    hosts text[];
    ports integer[];
    commands text[];
    done record;
BEGIN
    -- Named into the command's text: only vdb's own.
    IF call NOT IN ('vhnsw_check', 'vhnsw_stats', 'vhnsw_merge') THEN
        RAISE EXCEPTION 'vhnsw_on_placements runs vhnsw_check, vhnsw_stats or vhnsw_merge, not "%"', call
            USING ERRCODE = '22023';
    END IF;
    -- The remote session's search_path is its own: everything qualified.
    SELECT array_agg(g.nodename), array_agg(g.nodeport),
           array_agg(format('SELECT pg_catalog.json_agg(pg_catalog.json_build_array(u.s, @extschema@.%s(u.s::pg_catalog.regclass)::pg_catalog.text) ORDER BY u.o) FROM pg_catalog.unnest(%L::pg_catalog.text[]) WITH ORDINALITY u(s, o)',
                            call, g.shards))
      INTO hosts, ports, commands
      FROM (SELECT l.nodename, l.nodeport, array_agg(l.shard_index ORDER BY l.shardid) AS shards
              FROM @extschema@.vhnsw_placements(index) l
             WHERE every_placement OR l.first
             GROUP BY l.nodename, l.nodeport) g;
    IF hosts IS NULL THEN
        RETURN;
    END IF;
    FOR done IN EXECUTE 'SELECT r.node_name, r.node_port, r.success, r.result
                           FROM master_run_on_worker($1, $2, $3, true) r'
        USING hosts, ports, commands LOOP
        IF done.success THEN
            RETURN QUERY
                SELECT e ->> 0, done.node_name || ':' || done.node_port, true, e ->> 1, l.first
                  FROM json_array_elements(done.result::json) e
                  JOIN @extschema@.vhnsw_placements(index) l ON l.shard_index = e ->> 0
                   AND l.nodename = done.node_name AND l.nodeport = done.node_port;
        ELSE
            RETURN QUERY
                SELECT l.shard_index, done.node_name || ':' || done.node_port, false, done.result, l.first
                  FROM @extschema@.vhnsw_placements(index) l
                 WHERE l.nodename = done.node_name AND l.nodeport = done.node_port
                   AND (every_placement OR l.first)
                 ORDER BY l.shardid;
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION vhnsw_check(index regclass) RETURNS text
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf regclass;
    part record;
    found_placements boolean := false;
    problems text[] := '{}';
BEGIN
    -- One index's own storage: the C function checks what it needs.
    IF @extschema@.vhnsw_partitioned(index) OR EXISTS (SELECT FROM @extschema@.vhnsw_placements(index)) THEN
        PERFORM @extschema@.vhnsw_require(index, true, 'vhnsw_check()');
    END IF;
    IF @extschema@.vhnsw_partitioned(index) THEN
        FOR leaf IN SELECT * FROM @extschema@.vhnsw_leaf_indexes(index) LOOP
            problems := problems || ARRAY(
                SELECT format('%s: %s', leaf, line)
                  FROM regexp_split_to_table(@extschema@.vhnsw_check(leaf), E'\n') line
                 WHERE line <> '');
        END LOOP;
        RETURN array_to_string(problems, E'\n');
    END IF;
    FOR part IN SELECT * FROM @extschema@.vhnsw_on_placements(index, 'vhnsw_check', true) LOOP
        found_placements := true;
        IF NOT part.success THEN
            problems := problems || format('%s on %s: could not be checked: %s', part.shard_index, part.node, part.result);
        ELSE
            problems := problems || ARRAY(
                SELECT format('%s on %s: %s', part.shard_index, part.node, line)
                  FROM regexp_split_to_table(coalesce(part.result, ''), E'\n') line
                 WHERE line <> '');
        END IF;
    END LOOP;
    IF found_placements THEN
        RETURN array_to_string(problems, E'\n');
    END IF;
    RETURN @extschema@.vhnsw_check_one(index);
END
$$;
COMMENT ON FUNCTION vhnsw_check(regclass) IS 'problems of a vhnsw index (structure, and against its table), one per line; empty if none; a partitioned or distributed index: every partition''s or shard''s, each prefixed by its name';

-- Adds up the stats of several indexes; `parts` is an array of stats
-- objects, kept under the key `breakdown`.
CREATE FUNCTION vhnsw_stats_sum(parts jsonb, breakdown text) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    WITH part AS (SELECT p FROM jsonb_array_elements(parts) p),
    counts AS (
        SELECT jsonb_object_agg(key, (SELECT coalesce(sum((p ->> key)::numeric), 0) FROM part)) AS o
          FROM unnest(ARRAY['nodes', 'deleted_nodes', 'free_slots', 'free_overflow_pages', 'upper_slots',
                            'upper_slots_lost', 'pending', 'unindexed', 'merged_total',
                            'index_pages', 'index_bytes']) key),
    -- The shape, where every part that holds rows has the same (an empty
    -- index of an untyped column has no dims yet); null where they differ.
    shape AS (
        SELECT jsonb_object_agg(key, (SELECT CASE WHEN count(DISTINCT p -> key) = 1
                                                  THEN (array_agg(p -> key))[1] END
                                        FROM part
                                       WHERE (p ->> 'nodes')::numeric + (p ->> 'pending')::numeric > 0
                                          OR (p ->> 'dims')::numeric > 0)) AS o
          FROM unnest(ARRAY['dims', 'm', 'ef_construction', 'code_bits', 'code_dims']) key),
    levels AS (
        SELECT coalesce(jsonb_agg(n ORDER BY level), '[]') AS o
          FROM (SELECT level, sum(x::numeric) AS n
                  FROM part, jsonb_array_elements_text(p -> 'nodes_per_level') WITH ORDINALITY e(x, level)
                 GROUP BY level) l),
    -- Each part's average degree is over its nodes in use.
    degree AS (
        SELECT coalesce(round(sum((p ->> 'avg_degree_level0')::numeric * w) / nullif(sum(w), 0), 2), 0) AS o
          FROM part, LATERAL (SELECT (p ->> 'nodes')::numeric + (p ->> 'deleted_nodes')::numeric AS w) weight)
    SELECT counts.o || shape.o || jsonb_build_object(
               'last_merge', (SELECT max((p ->> 'last_merge')::timestamptz) FROM part),
               'entry_level', (SELECT coalesce(max((p ->> 'entry_level')::integer), -1) FROM part),
               'nodes_per_level', levels.o,
               'avg_degree_level0', degree.o,
               breakdown, parts)
      FROM counts, shape, levels, degree
$$;

CREATE FUNCTION vhnsw_stats(index regclass) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf regclass;
    part record;
    parts jsonb := '[]';
    s jsonb;
BEGIN
    -- One index's own storage: the C function checks what it needs.
    IF @extschema@.vhnsw_partitioned(index) OR EXISTS (SELECT FROM @extschema@.vhnsw_placements(index)) THEN
        PERFORM @extschema@.vhnsw_require(index, false, 'vhnsw_stats()');
    END IF;
    IF @extschema@.vhnsw_partitioned(index) THEN
        FOR leaf IN SELECT * FROM @extschema@.vhnsw_leaf_indexes(index) LOOP
            parts := parts || jsonb_build_array(jsonb_build_object('index', leaf::text) || @extschema@.vhnsw_stats(leaf));
        END LOOP;
        RETURN @extschema@.vhnsw_stats_sum(parts, 'partitions');
    END IF;
    -- One placement of each shard: a replicated shard counts once.
    FOR part IN SELECT * FROM @extschema@.vhnsw_on_placements(index, 'vhnsw_stats', false) LOOP
        IF NOT part.success THEN
            RAISE EXCEPTION 'vhnsw_stats() failed on shard index % on %: %', part.shard_index, part.node, part.result
                USING ERRCODE = '58000';
        END IF;
        parts := parts || jsonb_build_array(jsonb_build_object('index', part.shard_index, 'node', part.node)
                                            || part.result::jsonb);
    END LOOP;
    IF jsonb_array_length(parts) > 0 THEN
        RETURN @extschema@.vhnsw_stats_sum(parts, 'shards');
    END IF;
    s := @extschema@.vhnsw_stats_text(index)::jsonb;
    RETURN (s - 'last_merge_epoch')
           || jsonb_build_object('last_merge', CASE WHEN (s ->> 'last_merge_epoch')::float8 > 0
                                                    THEN to_timestamp((s ->> 'last_merge_epoch')::float8) END);
END
$$;
COMMENT ON FUNCTION vhnsw_stats(regclass) IS 'state of a vhnsw index: nodes, deleted nodes, free slots, pending entries, last merge, levels, degrees, size; a partitioned or distributed index: the sums, and each partition''s or shard''s under "partitions" or "shards"';

CREATE FUNCTION vhnsw_merge(index regclass) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    leaf regclass;
    part record;
    found_placements boolean := false;
    total bigint := 0;
BEGIN
    -- One index's own storage: the C function checks what it needs.
    IF @extschema@.vhnsw_partitioned(index) OR EXISTS (SELECT FROM @extschema@.vhnsw_placements(index)) THEN
        PERFORM @extschema@.vhnsw_require(index, true, 'vhnsw_merge()');
    END IF;
    IF @extschema@.vhnsw_partitioned(index) THEN
        FOR leaf IN SELECT * FROM @extschema@.vhnsw_leaf_indexes(index) LOOP
            total := total + @extschema@.vhnsw_merge(leaf);
        END LOOP;
        RETURN total;
    END IF;
    IF EXISTS (SELECT FROM @extschema@.vhnsw_placements(index)) THEN
        -- What the C function refuses, before the shards' own sessions
        -- (which would not know) are asked to write.
        IF pg_is_in_recovery() THEN
            RAISE EXCEPTION 'cannot run vhnsw_merge() during recovery' USING ERRCODE = '25006';
        END IF;
        IF current_setting('transaction_read_only')::boolean THEN
            RAISE EXCEPTION 'cannot run vhnsw_merge() in a read-only transaction' USING ERRCODE = '25006';
        END IF;
    END IF;
    FOR part IN SELECT * FROM @extschema@.vhnsw_on_placements(index, 'vhnsw_merge', true) LOOP
        found_placements := true;
        IF NOT part.success THEN
            RAISE EXCEPTION 'vhnsw_merge() failed on shard index % on %: %', part.shard_index, part.node, part.result
                USING ERRCODE = '58000';
        END IF;
        -- Every placement merges its own list; the rows count once.
        IF part.first THEN
            total := total + part.result::bigint;
        END IF;
    END LOOP;
    IF found_placements THEN
        RETURN total;
    END IF;
    RETURN @extschema@.vhnsw_merge_one(index);
END
$$;
COMMENT ON FUNCTION vhnsw_merge(regclass) IS 'merges every pending entry of a vhnsw index into its graph now (of every partition''s or shard''s index); returns how many';

-- Whether Citus distributes the table (or keeps it as a reference or
-- Citus local table): its coordinator copy is then a shell, and a query
-- on it is one that Citus plans across the shards.
CREATE FUNCTION vhnsw_distributed(tab regclass) RETURNS boolean
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    distributed boolean := false;
BEGIN
    IF to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL
       AND EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        EXECUTE 'SELECT EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = $1)'
           INTO distributed USING tab;
    END IF;
    RETURN distributed;
END
$$;

-- The query vhnsw_search runs, `$1` the query vector. On a partitioned
-- table: one ORDER BY ... LIMIT k query per leaf partition, so that
-- postgres_fdw ships the LIMIT to every shard (PostgreSQL 15 pushes it
-- through no partitioned parent) and, with async_capable foreign servers,
-- queries the shards at the same time; then the best k of the k per
-- partition. On any other table (plain, foreign, a partitioned one
-- without partitions yet, or one Citus distributes, which pushes the
-- LIMIT down to every shard itself): one ORDER BY ... LIMIT k query. The
-- ef_search hint is part of the query's text, so it reaches every shard.
CREATE FUNCTION vhnsw_search_sql(parent regclass, vector_column name, k integer,
                                 ef_search integer DEFAULT 0, operator text DEFAULT '<=>')
RETURNS text LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    columns text;
    hint text := '';
    branches text;
BEGIN
    IF operator NOT IN ('<->', '<#>', '<=>', '<+>', '<@>') THEN
        RAISE EXCEPTION 'operator must be one of <->, <#>, <=>, <+>, <@>, not "%"', operator
            USING ERRCODE = '22023';
    END IF;
    IF k < 1 THEN
        RAISE EXCEPTION 'k must be at least 1, not %', k USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = parent AND attname = vector_column
                   AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'column "%" of relation % does not exist', vector_column, parent
            USING ERRCODE = '42703';
    END IF;
    IF ef_search <> 0 THEN
        IF ef_search NOT BETWEEN 1 AND 1000 THEN
            RAISE EXCEPTION 'ef_search hint % is out of range (1 to 1000)', ef_search
                USING ERRCODE = '22023';
        END IF;
        hint := format(' WHERE %I OPERATOR(@extschema@.<^>) %s', vector_column, ef_search);
    END IF;
    -- Columns by name: a partition's own column order may differ.
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO columns
      FROM pg_attribute WHERE attrelid = parent AND attnum > 0 AND NOT attisdropped;
    IF (SELECT relkind FROM pg_class WHERE oid = parent) = 'p'
       AND NOT @extschema@.vhnsw_distributed(parent) THEN
        -- Each branch outputs exactly what it sorts by, so that no subquery
        -- scan sits between the Append and a foreign scan (which would keep
        -- the scan from running asynchronously).
        -- Operators by schema: whoever runs the text may have another search_path.
        SELECT string_agg(format('(SELECT %s, %I OPERATOR(@extschema@.%s) $1 AS vhnsw_distance FROM ONLY %s%s ORDER BY vhnsw_distance LIMIT %s)',
                                 columns, vector_column, operator, relid, hint, k),
                          ' UNION ALL ' ORDER BY relid)
          INTO branches
          FROM pg_partition_tree(parent) t
         WHERE t.isleaf
           -- Not one being detached concurrently: the parent no longer has its rows.
           AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = t.relid AND i.inhdetachpending);
    END IF;
    IF branches IS NULL THEN
        RETURN format('SELECT %s FROM %s%s ORDER BY %I OPERATOR(@extschema@.%s) $1 LIMIT %s',
                      columns, parent, hint, vector_column, operator, k);
    END IF;
    -- "+ 0": sorting by a new expression keeps the planner from a Merge
    -- Append, which would read the shards one after another.
    RETURN format('SELECT %s FROM (%s) AS fanout ORDER BY vhnsw_distance OPERATOR(pg_catalog.+) 0 LIMIT %s',
                  columns, branches, k);
END
$$;
COMMENT ON FUNCTION vhnsw_search_sql(regclass, name, integer, integer, text) IS 'the query vhnsw_search runs, $1 the query vector: one ORDER BY ... LIMIT k per leaf partition of a partitioned table, one ORDER BY ... LIMIT k on any other (plain, foreign, distributed by Citus)';

CREATE FUNCTION vhnsw_search(parent_row anyelement, vector_column name, query vector, k integer,
                             ef_search integer DEFAULT 0, operator text DEFAULT '<=>')
RETURNS SETOF anyelement LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    parent oid;
BEGIN
    -- Not STRICT: the row that names the table is usually NULL.
    IF vector_column IS NULL OR query IS NULL OR k IS NULL OR ef_search IS NULL OR operator IS NULL THEN
        RETURN;
    END IF;
    SELECT typrelid INTO parent FROM pg_type WHERE oid = pg_typeof(parent_row);
    IF parent IS NULL OR parent = 0 THEN
        RAISE EXCEPTION 'vhnsw_search needs a row of the table, such as NULL::items, not a %',
            pg_typeof(parent_row) USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE @extschema@.vhnsw_search_sql(parent, vector_column, k, ef_search, operator) USING query;
END
$$;
COMMENT ON FUNCTION vhnsw_search(anyelement, name, vector, integer, integer, text) IS 'the k nearest rows of a table (plain, partitioned, foreign, distributed), each partition searched with its own LIMIT k: SELECT * FROM vhnsw_search(NULL::items, ''embedding'', $1, 10)';
