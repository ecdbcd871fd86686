FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 REMINDERS_DATA_DIR=/data TEMPLATES_DIR=/app/templates
WORKDIR /app
COPY pyproject.toml README.md worker.py ./
COPY reminders ./reminders
COPY templates ./templates
RUN pip install --no-cache-dir . && useradd --create-home clinic && mkdir -p /data && chown clinic /data
USER clinic
EXPOSE 8000
CMD ["reminders", "web", "--host", "0.0.0.0", "--port", "8000"]
