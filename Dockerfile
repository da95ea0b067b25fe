FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY domain domain
COPY projections projections
COPY gateway gateway
COPY workers workers
COPY tasktrail tasktrail
RUN pip install --no-cache-dir .
ENTRYPOINT ["tasktrail"]
