"""The words of code analysis clients see: analysis types and per-file reason codes."""

from __future__ import annotations

from enum import StrEnum


class AnalysisType(StrEnum):
    SYNTAX = "syntax"
    DEPENDENCIES = "dependencies"
    STRUCTURE = "structure"
    FULL = "full"


class Reason(StrEnum):
    INVALID_PATH = "invalid_path"  # empty, NUL byte, not a string
    NOT_FOUND = "not_found"
    OUTSIDE_ROOTS = "outside_roots"  # resolves (after symlinks) outside every analysis root
    SYMLINK_LOOP = "symlink_loop"
    NOT_REGULAR_FILE = "not_regular_file"  # FIFO, socket, device, /proc or /sys pseudo-file
    PERMISSION_DENIED = "permission_denied"
    TOO_LARGE = "too_large"  # bigger than the per-file byte limit
    BINARY = "binary"  # NUL bytes: not source text
    INVALID_ENCODING = "invalid_encoding"  # not UTF-8
    UNSUPPORTED_LANGUAGE = "unsupported_language"
    TOO_MANY_FILES = "too_many_files"  # over the files-per-call limit
    TOTAL_BYTES_EXCEEDED = "total_bytes_exceeded"  # over the bytes-per-call limit
    TIME_LIMIT = "time_limit"  # the call's wall-time budget ran out first
    PARSE_TIMEOUT = "parse_timeout"  # the parser was stopped on this file
    RESOURCE_LIMIT = "resource_limit"  # the worker ran out of its memory allowance on this file
    PARSER_CRASHED = "parser_crashed"  # the worker process died on this file
    NOT_ANALYSED = "not_analysed"  # the worker stopped before reaching this file
    READ_ERROR = "read_error"  # any other I/O error
