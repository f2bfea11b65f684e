"""The tools as the model sees them: names, descriptions and JSON Schemas of their arguments
(sent with every model turn; the executor validates the same fields with msgspec)."""

from __future__ import annotations

from actors.agents.providers import ToolSpec


def _obj(required: list[str], **props: dict) -> dict:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}

TOOL_SPECS = [
    ToolSpec(name="exec", description=(
        "Run a shell command (bash -c) in the workspace. Returns its combined output and exit "
        "code; a command still running after yieldMs (default 10 s) returns status \"running\" "
        "with a sessionId for the process tool. Commands may need the owner's approval."),
        parameters=_obj(["command"], command=_STR,
                        workdir={**_STR, "description": "directory inside the workspace"},
                        env={"type": "object", "additionalProperties": _STR},
                        yieldMs=_INT, background=_BOOL,
                        timeout={**_INT, "description": "seconds; 0 = none"})),
    ToolSpec(name="process", description=(
        "Manage background exec sessions: list, poll (new output and status), log (output "
        "lines by offset/limit), write (stdin), kill, clear, remove."),
        parameters=_obj(["action"], action={"type": "string", "enum": [
            "list", "poll", "log", "write", "kill", "clear", "remove"]}, sessionId=_STR,
            data=_STR, eof=_BOOL, offset=_INT, limit=_INT)),
    ToolSpec(name="read", description="Read a text file of the workspace (optionally lines offset..offset+limit).",
             parameters=_obj(["path"], path=_STR, offset=_INT, limit=_INT)),
    ToolSpec(name="write", description="Create or overwrite a file in the workspace.",
             parameters=_obj(["path", "content"], path=_STR, content=_STR)),
    ToolSpec(name="edit", description=(
        "Replace oldText with newText in a workspace file; oldText must match exactly once "
        "unless replaceAll is true."),
        parameters=_obj(["path", "oldText", "newText"], path=_STR, oldText=_STR, newText=_STR,
                        replaceAll=_BOOL)),
]
