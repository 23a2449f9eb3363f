"""Stands in for pyOpenSSL's absence in the Lambda runtime and layer (bench/cold_start.py puts this folder first on
PYTHONPATH). The dev venv has pyOpenSSL (python-alipay-sdk, a test oracle, needs it), and botocore imports it,
and with it cryptography, whenever it is installed: a cold start measured with it would not be Lambda's."""

raise ImportError("pyOpenSSL is not in the Lambda runtime")
