"""Background jobs: what a user asked for, how far the worker is, and the file it made."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, utcnow
from .enums import Labelled, enum_column


class JobStatus(Labelled):
    QUEUED = "en_attente"
    RUNNING = "en_cours"
    DONE = "termine"
    FAILED = "echec"
    EXPIRED = "expire"

    @property
    def label(self) -> str:
        return {
            "en_attente": "En attente",
            "en_cours": "En cours",
            "termine": "Prêt",
            "echec": "Échec",
            "expire": "Fichier supprimé",
        }[self.value]


class Job(Base):
    """A long export or batch PDF, prepared by the huey worker for one user (the only one to fetch it)."""

    __tablename__ = "jobs"
    __table_args__ = (sa.Index("ix_jobs_status_heartbeat", "status", "heartbeat_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), unique=True)  # random, in URLs
    kind: Mapped[str] = mapped_column(sa.String(40))
    owner_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    params: Mapped[str] = mapped_column(sa.Text, default="{}")  # JSON; references and codes, never names
    title: Mapped[str] = mapped_column(sa.String(200))
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus, "job_status"), default=JobStatus.QUEUED)
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(sa.String(500), default="")
    file_name: Mapped[str] = mapped_column(sa.String(200))
    file_path: Mapped[str | None] = mapped_column(sa.String(500))
    file_size: Mapped[int | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)  # last sign of life (or of queueing)
    expires_at: Mapped[datetime | None] = mapped_column()

    @property
    def percent(self) -> int:
        return min(100, self.done * 100 // self.total) if self.total else 0

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.EXPIRED)
