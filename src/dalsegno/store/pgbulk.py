"""A running execution's batch in a few statements on PostgreSQL, not one per row.

A batch of the wide graph holds tens of task changes, attempts and events. `executemany`
sends them as one statement per row (pipelined, but the server still plans and runs each
one). Here each kind is one statement whose rows travel as arrays, one per parameter,
joined with `unnest ... WITH ORDINALITY`. The statement is derived from the one-row
statement of `dalsegno.store.sql` (its parameters become columns of the unnest), so the
two never drift apart: the same guarded UPDATE, the same INSERT, in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, cast, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.visitors import replacement_traverse


class Bulk:
    """One statement for a batch of rows, standing in for a `sql._Compiled` (same calls).

    `unique` names the parameters a row is matched by: an UPDATE joined with `unnest`
    changes a row once however often it is named, so a batch naming one twice goes row
    by row through the one-row statement.
    """

    def __init__(
        self,
        statement: Any,
        dialect: Dialect,
        single: Any,
        unique: Sequence[str] = (),
        counted: bool = False,
    ) -> None:
        self.single = single
        self.unique = tuple(unique)
        self.counted = counted
        one_row: Any = statement.compile(dialect=dialect)
        self.names = [
            name
            for name, bind in one_row.binds.items()
            if bind.value is None and bind.callable is None
        ]
        types = {name: one_row.binds[name].type for name in self.names}
        arrays = [
            cast(bindparam(f"rows_{name}", type_=ARRAY(types[name])), ARRAY(types[name]))
            for name in self.names
        ]
        rows = (
            func.unnest(*arrays)
            .table_valued(*self.names, with_ordinality="ordinality")
            .render_derived()
            .alias("v")
        )
        if statement.is_insert:
            columns = [c.name for c in statement.table.columns if c.name in self.names]
            values = select(*(rows.c[name] for name in columns)).order_by(rows.c.ordinality)
            bulk: Any = insert(statement.table).from_select(columns, values)
        else:

            def to_column(element: Any) -> Any:
                if isinstance(element, BindParameter) and element.key in self.names:
                    return rows.c[element.key]
                return None

            bulk = replacement_traverse(statement, {}, to_column)  # type: ignore[call-overload]
        compiled: Any = bulk.compile(dialect=dialect)
        self.sql = str(compiled)
        self.defaults = {
            name: bind.value for name, bind in compiled.binds.items() if bind.value is not None
        }

    def row(self, values: dict[str, Any]) -> Any:
        return self.single.row(values)

    def run(self, cursor: Any, values: dict[str, Any]) -> Any:
        self.run_many(cursor, [values])
        return cursor

    def run_many(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> int:
        """Run the rows; the count of rows changed if `counted`, else whatever is known.

        In a batch's pipeline (`PostgresStore.apply`) an uncounted statement is only
        queued, and goes to the server with the next one that waits for its answer.
        """
        if not self.counted:
            self._send(cursor, rows)
            return int(cursor.rowcount)
        with cursor.connection.pipeline():  # its exit waits for the answer: the count
            self._send(cursor, rows)
        return int(cursor.rowcount)

    def _send(self, cursor: Any, rows: Sequence[dict[str, Any]]) -> None:
        if self.unique and len({tuple(row[k] for k in self.unique) for row in rows}) < len(rows):
            self.single.run_many(cursor, rows)
            return
        params = dict(self.defaults)
        for name in self.names:
            params[f"rows_{name}"] = [row[name] for row in rows]
        # Never prepared: a generic plan cannot know how many rows the arrays hold (a
        # fresh plan does), and the owner's UPDATE of tasks took 9 ms on one, not 3.5.
        cursor.execute(self.sql, params, prepare=False)
