"""What the clients were told about their comments' edits and deletions and their votes, and
the check of SQL against it.

Votes and edits set a state (a visitor's vote is up, down or none; a comment's body is its last
edit), so the ledger keeps, per visitor and comment, the last acknowledged state and the states
a request without an answer may have left instead. Which of those a request can still be:
- it got no answer because its web died or answered 5xx: it was done or not before the next
  request of the same client, so only unanswered requests *after* the last acknowledged one
  may have replaced it;
- it timed out: its web may still be working on it and finish after later requests, so it
  stays a possible final state for good ("late").

"The last acknowledged" needs one order of requests: each comment is edited and deleted only
by the client that posted it, and each visitor votes from one client. The load runs in several
processes, each with a ledger; the runner merges them (`merge`), which refuses a comment or a
visitor found in two.
"""

from __future__ import annotations

from dataclasses import dataclass, field

VOTES = ("up", "down", "none")


@dataclass
class Possible:
    """A state: the last acknowledged value, and what unanswered requests may have set."""

    acknowledged: str
    maybe: set[str] = field(default_factory=set)  # unanswered since the last acknowledgement
    late: set[str] = field(default_factory=set)  # timed out: possible whenever they came

    def ack(self, value: str) -> None:
        self.acknowledged = value
        self.maybe.clear()

    def unknown(self, value: str, timed_out: bool) -> None:
        (self.late if timed_out else self.maybe).add(value)

    def values(self) -> set[str]:
        return {self.acknowledged} | self.maybe | self.late


@dataclass
class OwnComment:
    """A comment a client posted and had acknowledged, with its edit token."""

    id: str
    path: str
    edit_token: str
    body: Possible
    deleted: str = "no"  # no | maybe (a delete without an answer) | yes
    sent_at: float = 0.0  # when the post was sent (time.monotonic): the edit window's start


@dataclass
class Rows:
    """A comment as SQL holds it."""

    status: str
    body: str
    up: int
    down: int


class CommentLedger:
    def __init__(self) -> None:
        self.own: dict[str, OwnComment] = {}
        self.votes: dict[tuple[str, str], Possible] = {}  # (visitor, comment id) -> vote
        self.edits = self.deletes = self.votes_acknowledged = 0

    # -- recording -------------------------------------------------------------------------

    def posted(self, comment_id: str, path: str, edit_token: str, body: str,
               sent_at: float = 0.0) -> OwnComment:
        comment = OwnComment(comment_id, path, edit_token, Possible(body), sent_at=sent_at)
        self.own[comment_id] = comment
        return comment

    def edited(self, comment: OwnComment, body: str) -> None:
        comment.body.ack(body)
        self.edits += 1

    def deleted(self, comment: OwnComment) -> None:
        comment.deleted = "yes"
        self.deletes += 1

    def voted(self, visitor: str, comment_id: str, vote: str) -> None:
        self.votes.setdefault((visitor, comment_id), Possible("none")).ack(vote)
        self.votes_acknowledged += 1

    def vote_unknown(self, visitor: str, comment_id: str, vote: str, timed_out: bool) -> None:
        self.votes.setdefault((visitor, comment_id), Possible("none")).unknown(vote, timed_out)

    def merge(self, other: CommentLedger) -> None:
        """Another process's ledger into this one. A comment or a visitor in both would have
        two histories, and no last acknowledged state: refused."""
        both = self.own.keys() & other.own.keys()
        voters = {visitor for visitor, _ in self.votes} & {visitor for visitor, _ in other.votes}
        if both or voters:
            raise ValueError(f"comments {sorted(both)} and voters {sorted(voters)} are in two "
                             "ledgers: each must be kept by one process")
        self.own.update(other.own)
        self.votes.update(other.votes)
        self.edits += other.edits
        self.deletes += other.deletes
        self.votes_acknowledged += other.votes_acknowledged

    # -- checking --------------------------------------------------------------------------

    def vote_ranges(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Per comment, the least and most up and down votes SQL may hold."""
        ranges: dict[str, dict[str, list[int]]] = {}
        for (_visitor, comment_id), vote in self.votes.items():
            possible = vote.values()
            totals = ranges.setdefault(comment_id, {"up": [0, 0], "down": [0, 0]})
            for choice in ("up", "down"):
                totals[choice][0] += possible == {choice}
                totals[choice][1] += choice in possible
        return {cid: {k: (low, high) for k, (low, high) in totals.items()}
                for cid, totals in ranges.items()}

    def pending_changes(self, rows: dict[str, Rows]) -> int:
        """Acknowledged edits and deletes the listener has not stored yet."""
        return sum(1 for problem in self._changes(rows) if problem[0] == "lost")

    def compare(self, rows: dict[str, Rows]) -> tuple[int, int, list[str]]:
        """(lost, duplicated, errors): bodies, deletions and vote totals against SQL."""
        lost = duplicated = 0
        errors = []
        for kind, message in self._changes(rows):
            lost += kind == "lost"
            errors.append(message)
        for comment_id, totals in self.vote_ranges().items():
            row = rows.get(comment_id)
            for choice, (low, high) in totals.items():
                actual = 0 if row is None else getattr(row, choice)
                if actual < low:
                    lost += low - actual
                    errors.append(f"comment {comment_id}: {actual} {choice} votes in SQL, "
                                  f"acknowledged at least {low}")
                elif actual > high:
                    duplicated += actual - high
                    errors.append(f"comment {comment_id}: {actual} {choice} votes in SQL, "
                                  f"acknowledged at most {high}")
        return lost, duplicated, errors

    def _changes(self, rows: dict[str, Rows]) -> list[tuple[str, str]]:
        problems = []
        for comment in self.own.values():
            row = rows.get(comment.id)
            if row is None:
                continue  # counted with the comments (scenario.py)
            if row.status == "deleted":
                if comment.deleted == "no":
                    problems.append(("error", f"comment {comment.id} is deleted, but no "
                                              "delete was ever sent"))
                continue
            if comment.deleted == "yes":
                problems.append(("lost", f"comment {comment.id}: acknowledged delete, but "
                                         f"SQL says {row.status}"))
            elif row.body not in comment.body.values():  # an acknowledged edit is missing
                problems.append(("lost", f"comment {comment.id}: SQL body {row.body!r}, last "
                                         f"acknowledged {comment.body.acknowledged!r}"))
        return problems
