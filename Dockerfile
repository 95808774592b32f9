# One image for the worker and the lab (production shape; see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir .
ENV HANDRAIL_HOME=/data
CMD ["python", "-m", "worker"]
