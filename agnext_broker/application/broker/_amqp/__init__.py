"""The RabbitMQ side of the broker runtime: connections, topology, publishing and consuming.

Everything here translates aiormq's and aio-pika's exceptions into agnext-broker's
(``_errors.py``), so the rest of the runtime never catches ``aiormq.*`` or ``aio_pika.*``.
"""

from ._acks import Acknowledgements
from ._consumers import Consumers
from ._errors import amqp_errors
from ._topology import QueueCounts, Topology
from ._transport import Transport

__all__ = ["Acknowledgements", "Consumers", "QueueCounts", "Topology", "Transport", "amqp_errors"]
