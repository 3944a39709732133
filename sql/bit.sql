-- vdb: distances over PostgreSQL's own bit type, as pgvector defines them.
-- Loaded after vdb.sql.

CREATE FUNCTION hamming_distance(bit, bit) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_hamming_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION hamming_distance(bit, bit) IS 'Hamming distance (bits that differ)';
CREATE FUNCTION jaccard_distance(bit, bit) RETURNS float8
    AS 'MODULE_PATHNAME', 'vdb_jaccard_distance' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION jaccard_distance(bit, bit) IS 'Jaccard distance (1 if no bit is set in both)';

CREATE OPERATOR <~> (
    LEFTARG = bit, RIGHTARG = bit, PROCEDURE = hamming_distance, COMMUTATOR = '<~>'
);
COMMENT ON OPERATOR <~> (bit, bit) IS 'Hamming distance';
CREATE OPERATOR <%> (
    LEFTARG = bit, RIGHTARG = bit, PROCEDURE = jaccard_distance, COMMUTATOR = '<%>'
);
COMMENT ON OPERATOR <%> (bit, bit) IS 'Jaccard distance';

-- vhnsw operator classes: the index stores 32 bits to a 4-byte word, so a
-- node of 64,000 bits takes 8,000 bytes.
CREATE FUNCTION vhnsw_support_bit_hamming(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_bit_hamming' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION vhnsw_support_bit_jaccard(internal) RETURNS internal
    AS 'MODULE_PATHNAME', 'vdb_vhnsw_support_bit_jaccard' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OPERATOR CLASS bit_hamming_ops FOR TYPE bit USING vhnsw AS
    OPERATOR 1 <~> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 vhnsw_support_bit_hamming(internal);
CREATE OPERATOR CLASS bit_jaccard_ops FOR TYPE bit USING vhnsw AS
    OPERATOR 1 <%> (bit, bit) FOR ORDER BY float_ops,
    FUNCTION 1 vhnsw_support_bit_jaccard(internal);
