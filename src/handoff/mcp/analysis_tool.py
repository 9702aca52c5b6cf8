"""The analyze_codebase tool: validate, call the analysis service, shape the result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from handoff.domain.analysis import AnalysisType, Reason
from handoff.mcp.errors import tool_errors
from handoff.mcp.schemas import EntryReceipt, one_of

if TYPE_CHECKING:  # only the type: importing the container would load the storage layer
    from handoff.container import Container

PROGRESS_MIN_FILES = 10  # fewer files finish too fast for progress to help anyone

if TYPE_CHECKING:
    AnalysisTypeName = str
    ReasonName = str
else:
    AnalysisTypeName = one_of(t.value for t in AnalysisType)
    ReasonName = one_of(r.value for r in Reason)


class LinesOut(BaseModel):
    total: int
    code: int
    comment: int
    blank: int


class SyntaxErrorOut(BaseModel):
    line: int
    column: int
    kind: Literal["error", "missing"]
    text: str


class SymbolOut(BaseModel):
    name: str
    qualified_name: str
    kind: str = Field(description="class, function, method, constructor, struct, interface, enum, trait, impl, ...")
    line: int
    end_line: int
    parent: str | None
    depth: int = Field(description="0 for top-level symbols, 1 inside a class or other container, ...")
    signature: str
    doc: str | None = Field(description="First line of the docstring or of the comment above the definition.")
    declaration_only: bool = False


class ImportOut(BaseModel):
    module: str
    line: int
    category: Literal["stdlib", "third_party", "local"]
    resolved: list[str] = Field(description="Analysed files this import refers to (local imports only).")


class FileAnalysisOut(BaseModel):
    path: str = Field(description="Relative to its analysis root.")
    language: str
    bytes: int
    lines: LinesOut
    error_count: int = Field(description="Syntax errors found by the parser.")
    symbol_count: int
    entry_point: bool
    package: str | None = None
    syntax_errors: list[SyntaxErrorOut] | None = None
    symbols: list[SymbolOut] | None = None
    imports: list[ImportOut] | None = None


class FileErrorOut(BaseModel):
    path: str
    reason: ReasonName
    message: str


class EdgeOut(BaseModel):
    source: str = Field(description="The importing file.")
    target: str = Field(description="The imported file.")


class ModuleGraphOut(BaseModel):
    nodes: list[str]
    edges: list[EdgeOut]


class CentralSymbolOut(BaseModel):
    name: str
    qualified_name: str
    kind: str
    file: str
    line: int
    score: float
    signature: str


class ConsolidatedOut(BaseModel):
    files: int
    languages: dict[str, int]
    lines: int
    symbols: int
    entry_points: list[str]
    imports: dict[str, int] | None = None
    module_graph: ModuleGraphOut | None = None
    external_dependencies: list[str] | None = None
    central_symbols: list[CentralSymbolOut] | None = None


class AnalysisOut(BaseModel):
    files: list[FileAnalysisOut]
    errors: list[FileErrorOut]
    consolidated: ConsolidatedOut


class AnalyzeCodebaseResult(BaseModel):
    analysis: AnalysisOut
    entry: EntryReceipt
    stored_in_full: bool = Field(description="False when the stored copy was slimmed to fit the content limit.")


def register_analysis_tool(server: MCPServer, c: Container) -> None:
    @tool_errors
    async def analyze_codebase(
        session_key: Annotated[
            str, Field(description="The session that receives the analysis as a `file` context entry.", max_length=1024)
        ],
        file_paths: Annotated[
            list[str],
            Field(
                description=(
                    "Files or directories, relative to the server's analysis roots (or absolute inside them). "
                    "Directories are walked honouring .gitignore."
                ),
                min_length=1,
            ),
        ],
        ctx: Context,
        analysis_type: Annotated[
            AnalysisTypeName,
            Field(
                description=(
                    "syntax: language, parse errors, line counts; structure: classes/functions/methods with "
                    "signatures; dependencies: imports as stdlib/third_party/local; full: all plus a "
                    "cross-file module graph, entry points and central symbols."
                )
            ),
        ] = "structure",
    ) -> AnalyzeCodebaseResult:
        """Analyse source files with real parsers and store the result in the session's context."""

        async def progress(done: int, total: int, path: str) -> None:
            if total >= PROGRESS_MIN_FILES:
                await ctx.report_progress(done, total, f"analysed {path}")

        result = await c.analysis.analyze(session_key, file_paths, analysis_type, progress)
        return AnalyzeCodebaseResult(
            analysis=AnalysisOut.model_validate(result.analysis),
            entry=EntryReceipt.of(result.entry, replayed=False),
            stored_in_full=result.stored_in_full,
        )

    server.add_tool(
        analyze_codebase,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
        structured_output=True,
    )
