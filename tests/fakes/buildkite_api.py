"""The BuildKite fake ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.buildkite_api import TOKEN, FakeBuildkite, build, sample_builds

__all__ = ["TOKEN", "FakeBuildkite", "build", "sample_builds"]
