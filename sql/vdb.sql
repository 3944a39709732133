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

CREATE FUNCTION l2_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_l2_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION l2_distance(vector, vector) IS 'Euclidean distance';

CREATE FUNCTION inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION inner_product(vector, vector) IS 'inner product';

CREATE FUNCTION cosine_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_cosine_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION cosine_distance(vector, vector) IS 'cosine distance (NaN if either vector is zero)';

CREATE FUNCTION l1_distance(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_l1_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
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
    AS 'MODULE_PATHNAME', 'vdb_l2_squared_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vector_negative_inner_product(vector, vector) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_negative_inner_product' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
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

CREATE FUNCTION vhnsw_check(regclass) RETURNS text
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_check' LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION vhnsw_check(regclass) IS 'problems of a vhnsw index (structure, and against its table), one per line; empty if none';

CREATE FUNCTION vhnsw_stats_text(regclass) RETURNS text
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_stats' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_stats(index regclass) RETURNS jsonb
    AS $$
    SELECT (s OPERATOR(pg_catalog.-) 'last_merge_epoch'::text)
           OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object('last_merge',
               CASE WHEN (s OPERATOR(pg_catalog.->>) 'last_merge_epoch')::float8 OPERATOR(pg_catalog.>) 0
                    THEN pg_catalog.to_timestamp((s OPERATOR(pg_catalog.->>) 'last_merge_epoch')::float8) END)
    FROM (SELECT @extschema@.vhnsw_stats_text(index)::jsonb AS s) stats
    $$ LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION vhnsw_stats(regclass) IS 'state of a vhnsw index: nodes, deleted nodes, free slots, pending entries, last merge, levels, degrees, size';

CREATE FUNCTION vhnsw_merge(regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_merge' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION vhnsw_merge(regclass) IS 'merges every pending entry of a vhnsw index into its graph now; returns how many';

-- Fan-out search over a partitioned table: one ORDER BY ... LIMIT k query
-- per leaf partition, so that postgres_fdw ships the LIMIT to every shard
-- (PostgreSQL 15 pushes it through no partitioned parent) and, with
-- async_capable foreign servers, queries the shards at the same time; then
-- the best k of the k per partition. `$1` is the query vector.
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
    -- Each branch outputs exactly what it sorts by, so that no subquery
    -- scan sits between the Append and a foreign scan (which would keep
    -- the scan from running asynchronously).
    -- Operators by schema: whoever runs the text may have another search_path.
    SELECT string_agg(format('(SELECT %s, %I OPERATOR(@extschema@.%s) $1 AS vhnsw_distance FROM ONLY %s%s ORDER BY vhnsw_distance LIMIT %s)',
                             columns, vector_column, operator, relid, hint, k),
                      ' UNION ALL ' ORDER BY relid)
      INTO branches
      FROM pg_partition_tree(parent) WHERE isleaf;
    -- "+ 0": sorting by a new expression keeps the planner from a Merge
    -- Append, which would read the shards one after another.
    RETURN format('SELECT %s FROM (%s) AS fanout ORDER BY vhnsw_distance OPERATOR(pg_catalog.+) 0 LIMIT %s',
                  columns, branches, k);
END
$$;
COMMENT ON FUNCTION vhnsw_search_sql(regclass, name, integer, integer, text) IS 'the fan-out query vhnsw_search runs: one ORDER BY ... LIMIT k per leaf partition, $1 the query vector';

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
COMMENT ON FUNCTION vhnsw_search(anyelement, name, vector, integer, integer, text) IS 'the k nearest rows of a (partitioned, possibly sharded) table, each partition searched with its own LIMIT k: SELECT * FROM vhnsw_search(NULL::items, ''embedding'', $1, 10)';
