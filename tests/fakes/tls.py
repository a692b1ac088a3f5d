"""The self-signed certificate for https fakes ships with the package (the console's ARM)."""

from bot.sandbox.fakes.tls import SelfSignedCertificate, make_certificate

__all__ = ["SelfSignedCertificate", "make_certificate"]
